package plugins_test

import (
	"encoding/json"
	"testing"

	"github.com/parleyhq/parley/plugins"
)

func TestHasSealedKey(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    bool
	}{
		{`{"$sealed":{"key":"chat/1","nonce":"","data":""}}`, true},
		{` { "a": 1, "$sealed": 2 }`, true},
		{`{"\u0024sealed":{}}`, true},
		{`{"$se\u0061led":1}`, true},
		{`{"$SEALED":1}`, true},
		{`{"$sealed"`, true}, // malformed, but it begins like one
		{`{"text":"{\"$sealed\":1}"}`, false},
		{`{"nested":{"$sealed":1}}`, false},
		{`["$sealed"]`, false},
		{`{"price":"$5"}`, false},
		{`"$sealed"`, false},
		{`not json $sealed`, false},
		{``, false},
	} {
		if got := plugins.HasSealedKey([]byte(c.payload)); got != c.want {
			t.Errorf("HasSealedKey(%s) = %v, want %v", c.payload, got, c.want)
		}
	}
}

func TestSealNeedsKeysAndAnOwnedName(t *testing.T) {
	m := manifest()
	sealed := plugins.NewEvent{Type: "poll.created", Stream: "poll/1", Payload: json.RawMessage(`{}`), Seal: "poll/1"}
	cmd := plugins.Command{Name: "poll.create", Stream: "poll/1"}
	for name, err := range map[string]error{
		"append without keys": m.CheckAppend(sealed),
		"decide without keys": m.CheckDecided(cmd, []plugins.NewEvent{sealed}),
		"erase without keys":  m.CheckKey("poll/1"),
	} {
		if e := plugins.AsCoded(err); e == nil || e.Code != plugins.CodePermissionDenied {
			t.Errorf("%s: %v", name, err)
		}
	}
	m.Permissions = append(m.Permissions, plugins.PermKeys)
	if err := m.CheckAppend(sealed); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckDecided(cmd, []plugins.NewEvent{sealed}); err != nil {
		t.Fatal(err)
	}
	foreign := sealed
	foreign.Seal = "chat/1"
	forged := plugins.NewEvent{Type: "poll.created", Stream: "poll/1", Payload: json.RawMessage(`{"$sealed":{}}`)}
	for name, err := range map[string]error{
		"append unowned key": m.CheckAppend(foreign),
		"decide unowned key": m.CheckDecided(cmd, []plugins.NewEvent{foreign}),
		"erase unowned key":  m.CheckKey("chat/1"),
		"append forged":      m.CheckAppend(forged),
		"decide forged":      m.CheckDecided(cmd, []plugins.NewEvent{forged}),
	} {
		if e := plugins.AsCoded(err); e == nil || e.Code != plugins.CodePermissionDenied {
			t.Errorf("%s: %v", name, err)
		}
	}
}
