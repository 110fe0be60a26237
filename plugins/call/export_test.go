package call

// Kick has the scheduler look at calls again now (tests move a fake clock
// and then want the plugin to notice).
func (p *Plugin) Kick(ids ...string) { p.sched.kick(ids...) }

// SFUError is how the SFU's errors reach the plugin's callers.
var SFUError = sfuError
