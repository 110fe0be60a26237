package session

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bytes to the frame decoder: it must
// return a request or a malformed_frame error, never panic, and what it
// accepts must re-encode to a frame it accepts again. Seeds live in
// testdata/fuzz/FuzzDecodeRequest.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"method":"connect","params":{"appId":"app-x","userId":"alice","accessToken":"t","sdkVersion":"3.0.0"}}`,
		`{"id":"a","method":"getOnlineUsers"}`,
		`{"id":null,"method":"x"}`, `{"id":{},"method":"x"}`, `[]`, `{`, ``, `{"id":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		again, _ := json.Marshal(r)
		if _, err := DecodeRequest(again); err != nil {
			t.Fatalf("accepted %q but not its re-encoding %q: %v", b, again, err)
		}
	})
}
