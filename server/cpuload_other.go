//go:build !linux

package server

import "errors"

// cpuLoad is only implemented on Linux; elsewhere publishers are never paced.
type cpuLoad struct{}

func newCPULoad() (*cpuLoad, error) {
	return nil, errors.New("CPU load sampling is implemented for Linux only")
}

func (c *cpuLoad) sample() (busy, self float64, ok bool) { return 0, 0, false }
