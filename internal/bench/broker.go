package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
)

// errMissing is a prerequisite that is not there; main prints it as one
// line.
type errMissing struct{ what, howTo string }

func (e *errMissing) Error() string { return e.what + " (" + e.howTo + ")" }

// checkBroker fails with an errMissing when rabbitmqctl is not installed
// or nothing answers at amqpURL.
func checkBroker(amqpURL string) error {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		return &errMissing{"rabbitmqctl not found on PATH", "install RabbitMQ's CLI tools; the run creates and deletes a vhost with it"}
	}
	u, err := url.Parse(amqpURL)
	if err != nil {
		return fmt.Errorf("amqp url: %w", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	conn, err := net.DialTimeout("tcp", host, 3*time.Second)
	if err != nil {
		return &errMissing{"RabbitMQ does not answer at " + host, "run `make rabbitmq` or set AMQP_URL"}
	}
	return conn.Close()
}

// vhost is the run's own RabbitMQ virtual host.
type vhost struct {
	Name string
	// URL reaches the broker in the virtual host.
	URL string
}

func rabbitmqctl(ctx context.Context, args ...string) error {
	out, err := command(ctx, "rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// createVhost adds a virtual host of the run's own, named prefix and a
// random suffix, and lets the URL's user use it. The caller deletes it
// with delete.
func createVhost(ctx context.Context, baseURL, prefix string) (*vhost, error) {
	return createNamedVhost(ctx, baseURL, prefix+uuid.NewString()[:8])
}

// createNamedVhost is createVhost with the vhost's name given.
func createNamedVhost(ctx context.Context, baseURL, name string) (*vhost, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	v := &vhost{Name: name}
	if err := rabbitmqctl(ctx, "add_vhost", v.Name); err != nil {
		return nil, err
	}
	if err := rabbitmqctl(ctx, "set_permissions", "-p", v.Name, u.User.Username(), ".*", ".*", ".*"); err != nil {
		return nil, errors.Join(err, v.delete())
	}
	u.Path = "/" + v.Name
	v.URL = u.String()
	return v, nil
}

// delete removes the virtual host with its queues; it runs on a fresh
// context because it is cleanup after a possible Ctrl-C.
func (v *vhost) delete() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return rabbitmqctl(ctx, "delete_vhost", v.Name)
}

// sendCommand sends one command to a service queue and fails unless the
// service accepted it.
func sendCommand(ctx context.Context, r *amqp.Requester, queue, typ string, payload events.Payload) error {
	env, err := events.New(typ, "bench", payload)
	if err != nil {
		return err
	}
	m, err := amqp.MessageFromEnvelope("", env)
	if err != nil {
		return err
	}
	m.RoutingKey = queue
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := r.Request(rctx, queue, m)
	if err != nil {
		return fmt.Errorf("%s to %s: %w", typ, queue, err)
	}
	_, reply, err := events.DecodeAs[events.Reply](d.Body)
	if err != nil {
		return fmt.Errorf("%s reply: %w", typ, err)
	}
	if !reply.Accepted() {
		return fmt.Errorf("%s rejected: %s %s", typ, reply.Reason, reply.Message)
	}
	return nil
}
