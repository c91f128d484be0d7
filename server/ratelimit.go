package server

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
)

// authBackoff remembers failed authentications per client address. After free failures, each
// further one blocks the address for a backoff that doubles up to max; a blocked address gets
// 429 rate_limited on every authenticated route, valid token or not, until the backoff ends. An
// address quiet for max is forgotten. At most maxAddrs are remembered (the quietest dropped
// first), so a spray of addresses cannot grow it without bound.
type authBackoff struct {
	free      int
	base, max time.Duration
	maxAddrs  int
	now       func() time.Time
	mu        sync.Mutex
	byAddr    map[string]*authFailures
}

type authFailures struct {
	failures int
	last     time.Time // the last failure
	until    time.Time // blocked until
}

func newAuthBackoff(l Limits, now func() time.Time) *authBackoff {
	return &authBackoff{free: l.AuthFailuresFree, base: l.AuthBackoff, max: l.AuthBackoffMax, maxAddrs: l.MaxTrackedAddrs,
		now: now, byAddr: map[string]*authFailures{}}
}

// blocked reports whether addr is in a backoff, and for how long still.
func (b *authBackoff) blocked(addr string) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.byAddr[addr]
	if f == nil {
		return 0, false
	}
	if wait := f.until.Sub(b.now()); wait > 0 {
		return wait, true
	}
	return 0, false
}

// failed counts a failed authentication from addr and returns the backoff it now serves (0
// while within the free failures).
func (b *authBackoff) failed(addr string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	f := b.byAddr[addr]
	if f == nil {
		if len(b.byAddr) >= b.maxAddrs {
			b.pruneLocked(now)
		}
		f = &authFailures{}
		b.byAddr[addr] = f
	} else if now.Sub(f.last) > b.max {
		*f = authFailures{}
	}
	f.failures++
	f.last = now
	over := f.failures - b.free
	if over <= 0 {
		return 0
	}
	wait := b.max
	if over < 30 {
		wait = min(b.base<<(over-1), b.max)
	}
	f.until = now.Add(wait)
	return wait
}

// pruneLocked forgets quiet addresses, and if none is quiet, the half that failed longest ago.
func (b *authBackoff) pruneLocked(now time.Time) {
	for a, f := range b.byAddr {
		if now.Sub(f.last) > b.max {
			delete(b.byAddr, a)
		}
	}
	if len(b.byAddr) < b.maxAddrs {
		return
	}
	lasts := make([]time.Time, 0, len(b.byAddr))
	for _, f := range b.byAddr {
		lasts = append(lasts, f.last)
	}
	slices.SortFunc(lasts, func(x, y time.Time) int { return x.Compare(y) })
	cut := lasts[len(lasts)/2]
	for a, f := range b.byAddr {
		if !f.last.After(cut) {
			delete(b.byAddr, a)
		}
	}
}

// Denied requests: a token bucket per principal bounds how often one may be denied, and the
// denials are recorded as one requests_denied summary per principal per window instead of one
// record each. The number of principals is bounded by the principals file, and a summary by
// the routes and actions, so memory is bounded too.

// maxSamples bounds the resource ids and reasons a summary line keeps.
const maxSamples = 8

type denials struct {
	burst  float64
	rate   float64 // tokens per second
	window time.Duration
	now    func() time.Time
	record func(context.Context, provenance.Event) error

	mu     sync.Mutex
	byName map[string]*principalDenials
}

type principalDenials struct {
	tokens float64
	filled time.Time // when tokens was last brought up to date
	open   *provenance.RequestsDenied
	lines  map[deniedKey]*provenance.DeniedCount
}

type deniedKey struct{ action, kind, code string }

func newDenials(l Limits, now func() time.Time, record func(context.Context, provenance.Event) error) *denials {
	return &denials{burst: float64(l.DeniedBurst), rate: float64(l.DeniedPerMinute) / 60, window: l.DeniedWindow,
		now: now, record: record, byName: map[string]*principalDenials{}}
}

// refillLocked brings p's bucket up to now.
func (d *denials) refillLocked(p *principalDenials, now time.Time) {
	if el := now.Sub(p.filled).Seconds(); el > 0 {
		p.tokens = math.Min(d.burst, p.tokens+el*d.rate)
	}
	p.filled = now
}

func (d *denials) entryLocked(name string, now time.Time) *principalDenials {
	p := d.byName[name]
	if p == nil {
		p = &principalDenials{tokens: d.burst, filled: now}
		d.byName[name] = p
	}
	d.refillLocked(p, now)
	return p
}

// limited reports whether who has used its denials up, and how long until it may try again.
func (d *denials) limited(who policy.Principal) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.byName[who.Name]
	if p == nil {
		return 0, false
	}
	d.refillLocked(p, d.now())
	if p.tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - p.tokens) / d.rate * float64(time.Second)), true
}

// spend takes a token of who's bucket for a refused request that is recorded on its own (the
// gate's request_refused, which keeps the refusal's code, position and SQL digest): refused SQL
// is bounded by the same limit as denials, so a flood of it meets 429 rate_limited — counted
// in the summary, not recorded one by one — before it can grow the log without bound.
func (d *denials) spend(who policy.Principal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.entryLocked(who.Name, d.now())
	p.tokens = math.Max(0, p.tokens-1)
}

// note counts one denied request of who in its open window; code is forbidden,
// separation_of_duties or rate_limited (which takes no token: it is the bucket being empty).
func (d *denials) note(who policy.Principal, action, kind, id, code string, reasons []string, bundle string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	p := d.entryLocked(who.Name, now)
	if code != string(errcode.RateLimited) {
		p.tokens = math.Max(0, p.tokens-1)
	}
	if p.open == nil {
		p.open = &provenance.RequestsDenied{Principal: provenance.Principal(who), From: now.UTC()}
		p.lines = map[deniedKey]*provenance.DeniedCount{}
	}
	if bundle != "" {
		p.open.BundleDigest = bundle
	}
	p.open.Total++
	k := deniedKey{action, kind, code}
	line := p.lines[k]
	if line == nil {
		line = &provenance.DeniedCount{Action: action, ResourceKind: kind, Code: code}
		p.lines[k] = line
	}
	line.Count++
	if id != "" && len(line.Resources) < maxSamples && !slices.Contains(line.Resources, id) {
		line.Resources = append(line.Resources, id)
	}
	for _, r := range reasons {
		if len(line.Reasons) < maxSamples && !slices.Contains(line.Reasons, r) {
			line.Reasons = append(line.Reasons, r)
		}
	}
}

// flush writes the summaries of the windows that have ended, or of every open window when all
// (at shutdown). A summary that cannot be written is kept for the next flush.
func (d *denials) flush(ctx context.Context, all bool) error {
	d.mu.Lock()
	now := d.now()
	var due []*principalDenials
	var evs []*provenance.RequestsDenied
	for _, p := range d.byName {
		if p.open == nil || (!all && now.Sub(p.open.From) < d.window) {
			continue
		}
		ev := p.open
		ev.Until = now.UTC()
		ev.Counts = make([]provenance.DeniedCount, 0, len(p.lines))
		for _, l := range p.lines {
			ev.Counts = append(ev.Counts, *l)
		}
		slices.SortFunc(ev.Counts, func(a, b provenance.DeniedCount) int {
			return strings.Compare(a.Action+"\x00"+a.ResourceKind+"\x00"+a.Code, b.Action+"\x00"+b.ResourceKind+"\x00"+b.Code)
		})
		p.open, p.lines = nil, nil
		due = append(due, p)
		evs = append(evs, ev)
	}
	d.mu.Unlock()
	var firstErr error
	for i, ev := range evs {
		if err := d.record(ctx, ev); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			d.restore(due[i], ev)
		}
	}
	return firstErr
}

// restore puts back a summary that could not be written, merged with what came since.
func (d *denials) restore(p *principalDenials, ev *provenance.RequestsDenied) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.open == nil {
		p.open, p.lines = ev, map[deniedKey]*provenance.DeniedCount{}
		for i := range ev.Counts {
			l := ev.Counts[i]
			p.lines[deniedKey{l.Action, l.ResourceKind, l.Code}] = &l
		}
		ev.Counts = nil
		return
	}
	p.open.From = ev.From
	p.open.Total += ev.Total
	for _, l := range ev.Counts {
		k := deniedKey{l.Action, l.ResourceKind, l.Code}
		if cur := p.lines[k]; cur != nil {
			cur.Count += l.Count
		} else {
			l := l
			p.lines[k] = &l
		}
	}
}

// run flushes ended windows until ctx ends.
func (d *denials) run(ctx context.Context, errf func(error)) {
	tick := time.NewTicker(max(d.window/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := d.flush(ctx, false); err != nil {
				errf(err)
			}
		}
	}
}
