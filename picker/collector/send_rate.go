package collector

import "math"

// sendRate is this proxy's rate of requests to one endpoint, smoothed over
// scrapes: what the pool needs to guess how many requests the other
// proxies of a fleet sent the endpoint since its last scrape (they send
// about as we do, times the fleet's size).
type sendRate struct {
	picks uint64
	at    int64
	rate  float64 // requests per nanosecond
}

// sendRateWindow is the smoothing's time constant.
const sendRateWindow = 2e9 // 2 s

// observe folds the picks counted until now (Now() units) into the rate
// and returns it.
func (r *sendRate) observe(picks uint64, now int64) float64 {
	if r.at == 0 || now <= r.at || picks < r.picks {
		r.picks, r.at = picks, now
		return r.rate
	}
	dt := float64(now - r.at)
	inst := float64(picks-r.picks) / dt
	w := 1 - math.Exp(-dt/sendRateWindow)
	r.rate += w * (inst - r.rate)
	r.picks, r.at = picks, now
	return r.rate
}
