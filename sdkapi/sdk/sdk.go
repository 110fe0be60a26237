// Package sdk is the browser SDK: the TypeScript source of window.BandyerSDK
// and its widget (src/, declarations in index.d.ts, an npm-style
// package.json), the minified bundle built from it (dist/), and the HTTP
// handler that serves that bundle from the kernel.
//
// # Building
//
// `go generate ./sdkapi/sdk` bundles and minifies src/index.ts with esbuild,
// run through `go tool` (go.mod's tool directive): Go alone builds it. The
// bundle is committed, embedded in the binary, and TestBundleIsCurrent
// rebuilds it and fails when the committed file differs from the source.
// The SDK's version is package.json's, read by the bundle and by Version.
//
// # Serving
//
// Mount adds, on a kernel's mux:
//
//	GET /sdk/js/chat/<Version>/bandyer-widget.min.js  cached for a year (immutable)
//	GET /sdk/js/chat/latest/bandyer-widget.min.js     cached for 5 minutes, then revalidated
//	GET /sdk/js/chat/<Version|latest>/bandyer-widget.d.ts
//	GET /sdk/info                                     {version, region, environment}
//
// Every answer carries an ETag (If-None-Match answers 304), is gzipped for
// clients that accept it, and may be used cross-origin: the script runs on
// the integrator's pages. The SDK talks to the kernel that served it (the
// script's origin) unless configure names another (kernelUrl), and
// configure compares its region and environment with /sdk/info.
//
// # Window mode and screen sharing
//
// With `mode: 'window'` the call view (remote and local video, the
// controls) moves into a popup window the SDK opens with window.open when
// a call starts on this device: an outgoing call as it rings, an incoming
// one once answered here (the dial view stays in the widget, which says
// the call is in its own window). The popup is an about:blank window of
// the page's origin; the widget's elements, stylesheet and layout move
// there, and the media stay in the page. Closing the popup hangs the call
// up (endReason hang_up); the call's end closes the popup and brings the
// call view back to the widget (the ended and feedback views). A popup the
// browser refuses (window.open without a recent click) leaves the call in
// the widget, as in `embed` mode; the tests run Chromium with the popup
// blocker off (browsertest).
//
// With `tools: {screen_sharing: true}` the call view has a Share screen
// button: getDisplayMedia, sent as a second video track on a send-only
// m-line of its own, negotiated again with the SFU (call.media.offer; the
// SFU adds an m-line on the other side's connection with a call.media.sdp
// offer). The other side shows it as a second video (.bw-remote-screen)
// beside the camera. Stop sharing (or the browser's own stop button) stops
// the track and removes it from the offer; the SFU never removes an
// m-line, so the receiver shows a shared screen while packets flow
// (getStats, once a second) and drops it two seconds after they stop.
//
// # Caveats
//
//   - The whiteboard, snapshot, live edit, file upload and live pointer
//     tools are not in the widget yet (the `tools` option is validated
//     only).
//   - The popup plays its videos without a user gesture of its own: a
//     browser's autoplay policy may keep the remote sound muted there until
//     the user clicks in the popup.
//   - The feedback view's rating stays in the page: nothing receives it.
package sdk

//go:generate go tool esbuild src/index.ts --bundle --minify --format=iife --target=chrome72,firefox66,safari12,edge79 --charset=utf8 --legal-comments=none --log-level=warning --outfile=dist/bandyer-widget.min.js

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

var (
	//go:embed dist/bandyer-widget.min.js
	bundle []byte
	//go:embed index.d.ts
	declarations []byte
	//go:embed package.json
	packageJSON []byte
)

// Version is the SDK's version (package.json): the path it is served at
// and BandyerSDK.version.
var Version = func() string {
	var p struct{ Version string }
	if err := json.Unmarshal(packageJSON, &p); err != nil || p.Version == "" {
		panic("sdk: package.json has no version")
	}
	return p.Version
}()

// BundleName is the file name the SDK is served under.
const BundleName = "bandyer-widget.min.js"

// Bundle returns the embedded, minified SDK.
func Bundle() []byte { return bundle }

// Info is what the kernel tells the SDK about itself.
type Info struct {
	Region      string `json:"region"`
	Environment string `json:"environment"`
}

// asset is one file served in two encodings.
type asset struct {
	contentType string
	plain, gz   []byte
	etag        string
}

func newAsset(contentType string, b []byte) *asset {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	sum := sha256.Sum256(b)
	return &asset{contentType: contentType, plain: b, gz: buf.Bytes(), etag: hex.EncodeToString(sum[:12])}
}

// serve writes the asset with its caching headers; ServeContent answers
// If-None-Match, HEAD and ranges.
func (a *asset) serve(w http.ResponseWriter, r *http.Request, cacheControl string) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Add("Vary", "Accept-Encoding")
	body, etag := a.plain, `"`+a.etag+`"`
	if acceptsGzip(r) {
		body, etag = a.gz, `"`+a.etag+`-gz"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// Cache lifetimes: a versioned URL never changes; latest moves with
// upgrades, so browsers revalidate it (cheaply, by ETag) every 5 minutes.
const (
	cacheVersioned = "public, max-age=31536000, immutable"
	cacheLatest    = "public, max-age=300, must-revalidate"
)

// Mount adds the SDK's routes to mux.
func Mount(mux *http.ServeMux, info Info) {
	js := newAsset("text/javascript; charset=utf-8", bundle)
	dts := newAsset("application/typescript; charset=utf-8", declarations)
	files := map[string]*asset{BundleName: js, "bandyer-widget.d.ts": dts}
	mux.HandleFunc("GET /sdk/js/chat/{version}/{file}", func(w http.ResponseWriter, r *http.Request) {
		a := files[r.PathValue("file")]
		switch v := r.PathValue("version"); {
		case a == nil:
			http.NotFound(w, r)
		case v == Version:
			a.serve(w, r, cacheVersioned)
		case v == "latest":
			a.serve(w, r, cacheLatest)
		default:
			http.Error(w, "this kernel serves SDK "+Version+" (and latest), not "+v, http.StatusNotFound)
		}
	})
	body, _ := json.Marshal(struct {
		Version string `json:"version"`
		Info
	}{Version, info})
	mux.HandleFunc("GET /sdk/info", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-cache")
		h.Set("Access-Control-Allow-Origin", "*")
		w.Write(body)
	})
}
