package plugins

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// expandByMap is ExpandStream as it was before it scanned for the member
// it needs: params decoded into a map. The fuzz target holds the two to
// the same answers.
func expandByMap(tmpl, company, actor string, params json.RawMessage) (string, error) {
	var fields map[string]json.RawMessage
	var b strings.Builder
	for rest := tmpl; rest != ""; {
		lit, after, found := strings.Cut(rest, "{")
		b.WriteString(lit)
		if !found {
			break
		}
		name, tail, ok := strings.Cut(after, "}")
		if !ok {
			return "", fmt.Errorf("stream template %q: unclosed {", tmpl)
		}
		rest = tail
		switch {
		case name == "company":
			b.WriteString(company)
		case name == "actor":
			b.WriteString(actor)
		case strings.HasPrefix(name, "params.") && len(name) > len("params."):
			field := name[len("params."):]
			if fields == nil && json.Unmarshal(params, &fields) != nil {
				return "", Errorf(CodeValidation, "params must be an object with %s", field)
			}
			var v string
			if json.Unmarshal(fields[field], &v) != nil || v == "" || strings.Contains(v, "/") {
				return "", Errorf(CodeValidation, "params.%s must be a non-empty string without '/'", field)
			}
			b.WriteString(v)
		default:
			return "", fmt.Errorf("stream template %q: unknown placeholder {%s}", tmpl, name)
		}
	}
	return b.String(), nil
}

func TestExpandStream(t *testing.T) {
	for _, c := range []struct {
		params, want string
	}{
		{`{"channelId":"ch_1","text":"hi"}`, "chat/acme/ch/ch_1"},
		{` { "text" : {"channelId":"no"}, "channelId" : "ch_2" } `, "chat/acme/ch/ch_2"},
		{`{"channelId":"a","channelId":"b"}`, "chat/acme/ch/b"},
		{`{"\u0063hannelId":"ch_\u0033"}`, "chat/acme/ch/ch_3"},
		{`{"x":[1,"]",{"y":"\"}"}],"channelId":"é"}`, "chat/acme/ch/é"},
		{`{"channelId":"a/b"}`, "params.channelId must be a non-empty string without '/'"},
		{`{"channelId":""}`, "params.channelId must be a non-empty string without '/'"},
		{`{"channelId":7}`, "params.channelId must be a non-empty string without '/'"},
		{`null`, "params.channelId must be a non-empty string without '/'"},
		{`{}`, "params.channelId must be a non-empty string without '/'"},
		{`["channelId"]`, "params must be an object with channelId"},
		{`{"channelId":"a"`, "params must be an object with channelId"},
		{``, "params must be an object with channelId"},
	} {
		got, err := ExpandStream("chat/{company}/ch/{params.channelId}", "acme", "alice", json.RawMessage(c.params))
		if err != nil {
			got = AsCoded(err).Message
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.params, got, c.want)
		}
	}
}

func FuzzExpandStream(f *testing.F) {
	for _, p := range []string{
		`{"channelId":"ch_1","text":"hi"}`, `{"a":{"b":[1,2,{"c":"}"}]},"channelId":"x\"y"}`,
		`{"channelId":"\u002f"}`, `null`, ` {"channelId" : "a" , "channelId":null} `, `"x"`, `{`,
	} {
		f.Add("chat/{company}/ch/{params.channelId}", p)
	}
	f.Fuzz(func(t *testing.T, tmpl, params string) {
		got, err := ExpandStream(tmpl, "acme", "alice", json.RawMessage(params))
		want, werr := expandByMap(tmpl, "acme", "alice", json.RawMessage(params))
		var coded, wcoded *Error
		if got != want || (err == nil) != (werr == nil) || errors.As(err, &coded) != errors.As(werr, &wcoded) ||
			(err != nil && err.Error() != werr.Error()) {
			t.Fatalf("ExpandStream(%q, %q) = %q, %v; by map: %q, %v", tmpl, params, got, err, want, werr)
		}
	})
}
