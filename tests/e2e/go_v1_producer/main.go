// A Celery protocol-v1 producer written as gocelery (Go's most used Celery client) writes its
// messages: the same envelope and body fields, LPUSHed on queue "celery", then a poll of
// GET celery-task-meta-<id> every 50 ms (unlike gocelery, a FAILURE record ends the poll too, so
// that a test reads refusals). Built by tests/e2e/test_protocol_v1.py in GOPATH mode with Debian's
// redigo and uuid packages (the Go module proxy is not reachable here).
//
// Usage: v1producer <redis-url> <task> <args-json> <kwargs-json> <timeout-seconds>
// Prints the final record as JSON on stdout ({"status", "result", ...}); exits 1 on timeout.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"
)

// The envelope, as gocelery's CeleryMessage: headers left out (omitempty and nil).
type celeryMessage struct {
	Body            string                 `json:"body"`
	Headers         map[string]interface{} `json:"headers,omitempty"`
	ContentType     string                 `json:"content-type"`
	Properties      celeryProperties       `json:"properties"`
	ContentEncoding string                 `json:"content-encoding"`
}

type celeryProperties struct {
	BodyEncoding  string             `json:"body_encoding"`
	CorrelationID string             `json:"correlation_id"`
	ReplyTo       string             `json:"reply_to"`
	DeliveryInfo  celeryDeliveryInfo `json:"delivery_info"`
	DeliveryMode  int                `json:"delivery_mode"`
	DeliveryTag   string             `json:"delivery_tag"`
}

type celeryDeliveryInfo struct {
	Priority   int    `json:"priority"`
	RoutingKey string `json:"routing_key"`
	Exchange   string `json:"exchange"`
}

// The body, as gocelery's TaskMessage (protocol v1).
type taskMessage struct {
	ID      string                 `json:"id"`
	Task    string                 `json:"task"`
	Args    []interface{}          `json:"args"`
	Kwargs  map[string]interface{} `json:"kwargs"`
	Retries int                    `json:"retries"`
	ETA     *string                `json:"eta"`
	Expires *time.Time             `json:"expires"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 6 {
		fail("usage: v1producer <redis-url> <task> <args-json> <kwargs-json> <timeout-seconds>")
	}
	url, task := os.Args[1], os.Args[2]
	message := taskMessage{ID: uuid.New().String(), Task: task, Args: []interface{}{}, Kwargs: map[string]interface{}{}}
	if err := json.Unmarshal([]byte(os.Args[3]), &message.Args); err != nil {
		fail("args: %v", err)
	}
	if err := json.Unmarshal([]byte(os.Args[4]), &message.Kwargs); err != nil {
		fail("kwargs: %v", err)
	}
	timeout, err := strconv.ParseFloat(os.Args[5], 64)
	if err != nil {
		fail("timeout: %v", err)
	}
	body, err := json.Marshal(message)
	if err != nil {
		fail("body: %v", err)
	}
	envelope, err := json.Marshal(celeryMessage{
		Body:        base64.StdEncoding.EncodeToString(body),
		ContentType: "application/json",
		Properties: celeryProperties{
			BodyEncoding:  "base64",
			CorrelationID: uuid.New().String(),
			ReplyTo:       uuid.New().String(),
			DeliveryInfo:  celeryDeliveryInfo{Priority: 0, RoutingKey: "celery", Exchange: "celery"},
			DeliveryMode:  2,
			DeliveryTag:   uuid.New().String(),
		},
		ContentEncoding: "utf-8",
	})
	if err != nil {
		fail("envelope: %v", err)
	}
	connection, err := redis.DialURL(url, redis.DialConnectTimeout(5*time.Second),
		redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
	if err != nil {
		fail("connect: %v", err)
	}
	defer connection.Close()
	if _, err := connection.Do("LPUSH", "celery", envelope); err != nil {
		fail("LPUSH: %v", err)
	}
	deadline := time.Now().Add(time.Duration(timeout * float64(time.Second)))
	for time.Now().Before(deadline) {
		record, err := redis.Bytes(connection.Do("GET", "celery-task-meta-"+message.ID))
		if err == nil {
			var fields struct {
				Status string `json:"status"`
			}
			if json.Unmarshal(record, &fields) == nil && (fields.Status == "SUCCESS" || fields.Status == "FAILURE") {
				fmt.Println(string(record))
				return
			}
		} else if err != redis.ErrNil {
			fail("GET: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fail("%s %s: no final record within %g s", task, message.ID, timeout)
}
