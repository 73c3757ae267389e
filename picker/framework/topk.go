package framework

// TopK appends the positions of the k highest scores, best first. It is an
// insertion into a k-long list: k is small (the fallback list), so this beats
// sorting all candidates. Once the list is full, most candidates lose to its
// last entry on score alone, so that comparison is done inline.
func TopK(c *Cycle, eps []Endpoint, scores []float64, k int, dst []int) []int {
	if k <= 0 {
		return dst
	}
	base := len(dst)
	for i, s := range scores[:len(eps)] {
		if len(dst)-base == k {
			// s < scores[last] is better's answer, without the call.
			if last := dst[len(dst)-1]; s < scores[last] || !better(c, eps, scores, i, last) {
				continue
			}
			dst = dst[:len(dst)-1] // i takes the last entry's place
		}
		dst = append(dst, i)
		// Shift worse entries right and insert i in order.
		j := len(dst) - 1
		for j > base && better(c, eps, scores, i, dst[j-1]) {
			dst[j] = dst[j-1]
			j--
		}
		dst[j] = i
	}
	return dst
}

func better(c *Cycle, eps []Endpoint, scores []float64, a, b int) bool {
	if scores[a] != scores[b] {
		return scores[a] > scores[b]
	}
	return c.TieBreak(&eps[a]) > c.TieBreak(&eps[b])
}
