package main

import (
	"reflect"
	"testing"
)

// ev builds a history from (client, op, id) triples.
func ev(triples ...string) []Event {
	var out []Event
	for i := 0; i+2 < len(triples); i += 3 {
		out = append(out, Event{Client: triples[i], Op: triples[i+1], ID: triples[i+2]})
	}
	return out
}

// TestCheckLostConfirmedMessageFails: a message the broker confirmed and no consumer ever
// received is reported lost, and the run fails; an unconfirmed one may be missing.
func TestCheckLostConfirmedMessageFails(t *testing.T) {
	r := Check(ev(
		"p0", opPublish, "p0-000001", "p0", opAck, "p0-000001",
		"p0", opPublish, "p0-000002", "p0", opAck, "p0-000002",
		"p0", opPublish, "p0-000003", // no confirm: may be lost
		"p0", opPublish, "p0-000004", "p0", opNack, "p0-000004",
		"c1", opDeliver, "p0-000001",
	))
	if r.OK() {
		t.Fatalf("a confirmed message never delivered passed: %+v", r)
	}
	if !reflect.DeepEqual(r.Lost, []string{"p0-000002"}) {
		t.Errorf("lost = %v, want [p0-000002] (only the confirmed one)", r.Lost)
	}
	if r.Published != 4 || r.Confirmed != 2 || r.Nacked != 1 || r.Unconfirmed != 2 {
		t.Errorf("counts = %+v", r)
	}
}

// TestCheckDuplicatesPass: at-least-once delivery allows a message twice, and a message
// delivered though its confirm never came; both are counted, neither fails the run.
func TestCheckDuplicatesPass(t *testing.T) {
	r := Check(ev(
		"p0", opPublish, "p0-000001", "p0", opAck, "p0-000001",
		"p1", opPublish, "p1-000001", // connection dropped before the confirm
		"c1", opDeliver, "p0-000001",
		"c2", opDeliver, "p0-000001", // redelivered after c1's connection dropped
		"drain", opDeliver, "p1-000001",
	))
	if !r.OK() {
		t.Fatalf("duplicates failed the run: %+v", r)
	}
	if r.Duplicates != 1 || r.UnconfirmedDelivered != 1 || r.Deliveries != 3 || r.Delivered != 2 {
		t.Errorf("counts = %+v, want 1 duplicate, 1 unconfirmed delivered, 3 deliveries of 2 messages", r)
	}
}

// TestCheckPhantomDeliveryFails: a delivery of a message no publisher sent fails the run.
func TestCheckPhantomDeliveryFails(t *testing.T) {
	r := Check(ev(
		"p0", opPublish, "p0-000001", "p0", opAck, "p0-000001",
		"c1", opDeliver, "p0-000001",
		"c1", opDeliver, "p0-000999",
	))
	if r.OK() || !reflect.DeepEqual(r.Phantoms, []string{"p0-000999"}) {
		t.Fatalf("phantoms = %v, ok = %v; want [p0-000999] and a failure", r.Phantoms, r.OK())
	}
}

// TestCheckReturnedIsNotConfirmed: a message returned as unroutable and then acked (what a
// broker does for a mandatory publish no queue took) is not a confirmed message.
func TestCheckReturnedIsNotConfirmed(t *testing.T) {
	r := Check(ev("p0", opPublish, "p0-000001", "p0", opReturn, "p0-000001", "p0", opAck, "p0-000001"))
	if !r.OK() || r.Confirmed != 0 || r.Returned != 1 {
		t.Fatalf("result = %+v, want a returned, unconfirmed message and no violation", r)
	}
}
