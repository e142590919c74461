//go:build !linux

package store

import "errors"

func (s *Store) adviseLogs(bool, bool) (int, int, error) {
	return -1, -1, errors.New("paging out the value log needs Linux's madvise(MADV_PAGEOUT)")
}
