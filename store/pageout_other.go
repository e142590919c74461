//go:build !linux

package store

import "fmt"

func (s *Store) adviseLogs(bool, bool, bool) (int, int, error) {
	return -1, -1, fmt.Errorf("%w: paging out the value log needs Linux's madvise(MADV_PAGEOUT)", errNoAdvice)
}
