//go:build !linux

package store

import "errors"

func (s *Store) pageOut() error {
	return errors.New("paging out the value log needs Linux's madvise(MADV_PAGEOUT)")
}
