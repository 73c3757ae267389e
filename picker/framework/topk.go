package framework

// TopK appends the positions of the k highest scores, best first; equal
// scores are ordered by TieBreak. It is an insertion into a k-long list: k
// is small (the fallback list), so this beats sorting all candidates. Once
// the list is full, most candidates lose to its last entry on score alone,
// so that comparison comes first. The tie keys of the listed entries are
// kept beside them, so each candidate's is computed at most once.
func TopK(c *Cycle, eps []Endpoint, scores []float64, k int, dst []int) []int {
	if k <= 0 {
		return dst
	}
	if cap(c.ties) < k {
		c.ties = make([]uint64, k)
	}
	ties := c.ties[:k] // ties[j]: TieBreak of dst[base+j]
	base := len(dst)
	n := 0            // entries listed
	var worst float64 // the last entry's score once n == k
	for i, s := range scores[:len(eps)] {
		var t uint64
		if n == k {
			// better(i, last), with the score test first and inline.
			if s < worst {
				continue
			}
			t = c.TieBreak(&eps[i])
			if !better(s, t, worst, ties[n-1]) {
				continue
			}
			n-- // i takes the last entry's place
			dst = dst[:base+n]
		} else {
			t = c.TieBreak(&eps[i])
		}
		dst = append(dst, i)
		// Shift worse entries right and insert i in order.
		j := n
		for j > 0 && better(s, t, scores[dst[base+j-1]], ties[j-1]) {
			dst[base+j] = dst[base+j-1]
			ties[j] = ties[j-1]
			j--
		}
		dst[base+j], ties[j] = i, t
		n++
		worst = scores[dst[base+n-1]]
	}
	return dst
}

// better reports whether score sa with tie key ta ranks before sb, tb.
func better(sa float64, ta uint64, sb float64, tb uint64) bool {
	if sa != sb {
		return sa > sb
	}
	return ta > tb
}
