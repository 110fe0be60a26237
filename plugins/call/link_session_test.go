package call_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins/chat"
	"github.com/parleyhq/parley/sdkapi/session"
)

// TestLinkResumeGetsMissedChat: a call-link session that resumes with
// lastSeq gets the chat messages it missed (their payloads are sealed in
// the log: the link's scope is checked on the opened event).
func TestLinkResumeGetsMissedChat(t *testing.T) {
	w := start(t, t.TempDir(), pluginhost.InProcess, nil)
	room := w.room(`{"participants":[{"user_id":"alice"},{"user_id":"bob"}]}`)
	la, _ := w.link(room.UserURLs[0].URL, nil)
	add := la.Cmd(chat.CmdChannelAdd, obj{"userId": "bob"})
	ab := decode[chat.ChannelAdded](t, add.Events[0].Data).ChannelID
	msg := w.connect("bob").Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "hello alice"})
	la.expectType(chat.EvMessageSent)
	la2, _ := w.link(room.UserURLs[0].URL, obj{"lastSeq": add.Seq}) // another tab, resuming
	deadline := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-la2.Frames():
			if !ok {
				t.Fatal("the resumed link session closed")
			}
			if f.Event == chat.EvMessageSent && f.Seq == msg.Seq {
				return
			}
		case <-deadline:
			t.Fatalf("the resumed link session did not get message seq %d", msg.Seq)
		}
	}
}

// TestLinkChatFollowsTools: a participant whose tools are {} (every tool
// off) has no chat in the call-link session; one with the chat tool on
// has it.
func TestLinkChatFollowsTools(t *testing.T) {
	w := start(t, t.TempDir(), pluginhost.InProcess, nil)
	room := w.room(`{"participants":[{"user_id":"alice","tools":{"chat":true}},{"user_id":"bob","tools":{}}]}`)
	lb, _ := w.link(room.UserURLs[1].URL, nil)
	if _, err := lb.Call(chat.CmdChannelAdd, obj{"userId": "alice"}); err == nil {
		t.Error("bob's tools are {} (all off), yet chat.channel.add succeeded in his link session")
	}
	la, _ := w.link(room.UserURLs[0].URL, nil)
	la.Cmd(chat.CmdChannelAdd, obj{"userId": "bob"})
}

// TestLinkSessionsKeepTheirOwnCount: whoever holds a user's call link
// cannot use up that user's own sessions, nor make them online to the
// company: call-link sessions are counted apart, and announce nobody.
func TestLinkSessionsKeepTheirOwnCount(t *testing.T) {
	w := start(t, t.TempDir(), pluginhost.InProcess, nil)
	room := w.room(`{"participants":[{"user_id":"alice"},{"user_id":"bob"}]}`)
	bob := w.connect("bob")
	for range 10 { // the per-user limit
		if _, la := w.link(room.UserURLs[0].URL, nil); la.UserID != "alice" {
			t.Fatalf("the link is %s's", la.UserID)
		}
	}
	w.linkFails(room.UserURLs[0].URL, nil, session.CodeTooManySessions)
	var online struct {
		Users []string `json:"users"`
	}
	ans, err := bob.Call("getOnlineUsers", nil)
	if err != nil || json.Unmarshal(ans, &online) != nil {
		t.Fatalf("getOnlineUsers: %s %v", ans, err)
	}
	if slices.Contains(online.Users, "alice") {
		t.Fatalf("alice is online through her call link's sessions: %v", online.Users)
	}
	w.connect("alice") // her own sessions are still hers
}
