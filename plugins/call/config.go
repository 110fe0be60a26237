package call

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config sets the plugin's timers and its media plane. Zero values take
// the defaults.
type Config struct {
	// DialTimeout is how long a call rings before it ends with timeout
	// (default 45 s). It is written into call.created (dialDeadline), so a
	// change applies to new calls only.
	DialTimeout time.Duration
	// ConnectTimeout is how long a participant's device has to get its
	// media connected once the call needs it (default 30 s).
	ConnectTimeout time.Duration
	// MediaGrace is how long a participant's connected media may stay
	// disconnected or failed before the call ends with connection_lost
	// (default 10 s).
	MediaGrace time.Duration
	// Settle is how long the plugin leaves a call alone after deciding a
	// command on it before it appends a transition of its own (default
	// 1 s): a timeout never lands between an answer's decision and its
	// append.
	Settle time.Duration

	// UDPPort is the one UDP port of every PeerConnection (default 3478).
	UDPPort int
	// PublicIP is the address advertised in ICE candidates, when the
	// kernel is behind NAT; empty advertises the host's own.
	PublicIP string

	Now func() time.Time // the clock (default time.Now)
}

// The environment variables ConfigFromEnv reads.
const (
	EnvDialTimeout    = "PARLEY_CALL_DIAL_TIMEOUT"    // a Go duration ("45s") or seconds ("45")
	EnvConnectTimeout = "PARLEY_CALL_CONNECT_TIMEOUT" // idem
	EnvMediaGrace     = "PARLEY_CALL_MEDIA_GRACE"     // idem
	EnvUDPPort        = "PARLEY_CALL_UDP_PORT"        // 1..65535
	EnvPublicIP       = "PARLEY_CALL_PUBLIC_IP"       // an IP address
)

// EnvPrefix starts every variable of the plugin's configuration: the
// kernel passes them on to the plugin's process.
const EnvPrefix = "PARLEY_CALL_"

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 45 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.MediaGrace <= 0 {
		c.MediaGrace = 10 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = time.Second
	}
	if c.UDPPort <= 0 {
		c.UDPPort = 3478
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ConfigFromEnv reads the configuration from environment entries
// ("KEY=value"). Unset variables take the defaults; a malformed one is an
// error naming it, and takes its default too.
func ConfigFromEnv(env []string) (Config, error) {
	var c Config
	var errs []error
	for _, kv := range env {
		key, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(key, EnvPrefix) || val == "" {
			continue
		}
		var err error
		switch key {
		case EnvDialTimeout:
			c.DialTimeout, err = duration(val)
		case EnvConnectTimeout:
			c.ConnectTimeout, err = duration(val)
		case EnvMediaGrace:
			c.MediaGrace, err = duration(val)
		case EnvUDPPort:
			c.UDPPort, err = strconv.Atoi(val)
			if err == nil && (c.UDPPort < 1 || c.UDPPort > 65535) {
				c.UDPPort, err = 0, errors.New("not a port")
			}
		case EnvPublicIP:
			if net.ParseIP(val) == nil {
				err = errors.New("not an IP address")
			} else {
				c.PublicIP = val
			}
		default:
			err = errors.New("unknown setting")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", key, val, err))
		}
	}
	return c.withDefaults(), errors.Join(errs...)
}

// duration reads "45s" or "45" (seconds); it must be positive.
func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.Atoi(s)
		if nerr != nil {
			return 0, errors.New("not a duration like 45s")
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

// The process's environment and standard error, for New; variables so
// that tests can replace them.
var (
	environ = os.Environ
	stderr  = os.Stderr
)
