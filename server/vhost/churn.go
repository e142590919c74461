package vhost

import "sync/atomic"

// QueueChurn counts queues created and deleted, in every vhost of a Registry (RabbitMQ's
// queues_created_total and queues_deleted_total): one atomic add per queue.
type QueueChurn struct {
	created, deleted atomic.Uint64
}

// Created is how many queues were created by a declare since start (recovered ones are not).
func (c *QueueChurn) Created() uint64 { return c.created.Load() }

// Deleted is how many queues were deleted since start, for any reason: queue.delete,
// auto-delete, an exclusive owner closing, x-expires.
func (c *QueueChurn) Deleted() uint64 { return c.deleted.Load() }

func (c *QueueChurn) addCreated() {
	if c != nil {
		c.created.Add(1)
	}
}

func (c *QueueChurn) addDeleted() {
	if c != nil {
		c.deleted.Add(1)
	}
}

// Churn returns the registry's queue churn counters.
func (r *Registry) Churn() *QueueChurn { return &r.churn }
