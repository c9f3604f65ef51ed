package tasks

// The runtime of the generated callers, written once by hand (task-contracts ships it and
// `task-contracts generate go` copies it): it speaks the wire format of docs/wire.md. A call is one
// LPUSH of a Celery protocol-v2 envelope to the contract's queue, with the contract_shape header;
// the worker publishes the record on this client's reply channel (task-client-<hex>), and a GET of
// celery-task-meta-<id> every half second covers workers that publish on the task's channel only.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/google/uuid"
)

const (
	replyChannelPrefix = "task-client-"
	resultKeyPrefix    = "celery-task-meta-"
	revokedKeyPrefix   = "task-sdk-revoked-"
	runningKeyPrefix   = "task-sdk-running-"
	shapeHeader        = "contract_shape"
	// How often a waiting call reads its record directly, for workers older than reply channels.
	fallbackInterval = 500 * time.Millisecond
	// Every Redis command has this bound, so a Redis that is down or frozen is an error, not a hang.
	ioTimeout = time.Second
	// How long a cancel mark and the REVOKED record it stores are kept (Celery's result_expires).
	cancelKeepSeconds = 86400
)

// Contract is what the runtime needs to know of one contract; the generated code declares one per contract.
type Contract struct {
	Name    string
	Queue   string
	Timeout time.Duration
	Shape   json.RawMessage
}

// InvalidArguments: the arguments break the contract. Returned before anything is published.
type InvalidArguments struct {
	Contract string
	Problems []string
}

func (e *InvalidArguments) Error() string {
	return fmt.Sprintf("invalid arguments for %s: %s", e.Contract, strings.Join(e.Problems, "; "))
}

// TaskFailed: the task ran, or the worker refused it, and it failed; RemoteType and RemoteMessage
// are the worker-side exception's class name and message.
type TaskFailed struct {
	Contract, TaskID, RemoteType, RemoteMessage, RemoteTraceback string
}

func (e *TaskFailed) Error() string {
	return fmt.Sprintf("%s failed on the worker: %s: %s", e.Contract, e.RemoteType, e.RemoteMessage)
}

// UnknownTask: no worker serves this contract.
type UnknownTask struct{ Contract, TaskID, Message string }

func (e *UnknownTask) Error() string {
	return fmt.Sprintf("no worker serves %s: %s", e.Contract, e.Message)
}

// ContractMismatch: the worker holds another version of the contract and the difference breaks this call.
type ContractMismatch struct{ Contract, TaskID, Message string }

func (e *ContractMismatch) Error() string { return e.Contract + ": " + e.Message }

// TaskTimeout: no result within the bound. The task may still run: wait again with the handle.
type TaskTimeout struct {
	Contract, TaskID string
	Timeout          time.Duration
}

func (e *TaskTimeout) Error() string {
	return fmt.Sprintf("%s %s: no result within %v (the task may still run)", e.Contract, e.TaskID, e.Timeout)
}

// TaskCancelled: the call was cancelled before it ran, or stopped while running.
type TaskCancelled struct{ Contract, TaskID, Reason string }

func (e *TaskCancelled) Error() string {
	return fmt.Sprintf("%s %s was cancelled (%s)", e.Contract, e.TaskID, e.Reason)
}

// BrokerUnavailable: Redis could not be reached in time, or refused a command. URL has no password.
type BrokerUnavailable struct {
	URL string
	Err error
}

func (e *BrokerUnavailable) Error() string {
	return fmt.Sprintf("broker %s unavailable: %v", e.URL, e.Err)
}
func (e *BrokerUnavailable) Unwrap() error { return e.Err }

// Client calls contracts through one Redis (broker and result backend). Safe for concurrent use.
type Client struct {
	url          string
	safeURL      string
	pool         *redis.Pool
	replyChannel string

	mu         sync.Mutex
	subscriber *redis.PubSubConn
	waiters    map[string]chan []byte
}

// NewClient makes a client for a redis:// URL; it connects on the first call.
func NewClient(redisURL string) (*Client, error) {
	parsed, err := url.Parse(redisURL)
	if err != nil || (parsed.Scheme != "redis" && parsed.Scheme != "rediss") {
		return nil, fmt.Errorf("not a redis:// URL: %q", redisURL)
	}
	safe := *parsed
	safe.User = nil
	suffix := make([]byte, 16)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	c := &Client{url: redisURL, safeURL: safe.String(), replyChannel: replyChannelPrefix + hex.EncodeToString(suffix),
		waiters: map[string]chan []byte{}}
	c.pool = &redis.Pool{MaxIdle: 4, IdleTimeout: time.Minute, Dial: c.dial}
	return c, nil
}

func (c *Client) dial() (redis.Conn, error) {
	return redis.DialURL(c.url, redis.DialConnectTimeout(ioTimeout), redis.DialReadTimeout(ioTimeout),
		redis.DialWriteTimeout(ioTimeout))
}

// Close ends the client's connections; waiting calls then time out.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.subscriber != nil {
		c.subscriber.Close()
		c.subscriber = nil
	}
	c.mu.Unlock()
	return c.pool.Close()
}

func (c *Client) unavailable(err error) error { return &BrokerUnavailable{URL: c.safeURL, Err: err} }

// listen subscribes to the reply channel once (again after a lost connection), before any publish.
func (c *Client) listen() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subscriber != nil {
		return nil
	}
	conn, err := c.dial()
	if err != nil {
		return c.unavailable(err)
	}
	sub := &redis.PubSubConn{Conn: conn}
	if err := sub.Subscribe(c.replyChannel); err != nil {
		conn.Close()
		return c.unavailable(err)
	}
	switch reply := sub.ReceiveWithTimeout(ioTimeout).(type) {
	case redis.Subscription:
	case error:
		conn.Close()
		return c.unavailable(reply)
	}
	c.subscriber = sub
	go c.dispatch(sub)
	return nil
}

func (c *Client) dispatch(sub *redis.PubSubConn) {
	for {
		switch reply := sub.ReceiveWithTimeout(0).(type) {
		case redis.Message:
			var record struct {
				TaskID string `json:"task_id"`
			}
			if json.Unmarshal(reply.Data, &record) != nil {
				continue
			}
			c.mu.Lock()
			waiter := c.waiters[record.TaskID]
			c.mu.Unlock()
			if waiter != nil {
				select {
				case waiter <- reply.Data:
				default: // a newer record is on its way or the waiter reads the key itself
				}
			}
		case error:
			c.mu.Lock()
			if c.subscriber == sub {
				c.subscriber = nil
			}
			c.mu.Unlock()
			sub.Close()
			return
		}
	}
}

// Handle is one published call: its id, its result, its cancellation.
type Handle[T any] struct {
	ID       string
	client   *Client
	contract *Contract
	records  chan []byte
}

type checked interface{ problems() []string }

// submit validates, then publishes one call; nothing reaches Redis for an invalid call.
func submit[T any](ctx context.Context, c *Client, contract *Contract, args checked) (*Handle[T], error) {
	if problems := args.problems(); len(problems) > 0 {
		return nil, &InvalidArguments{Contract: contract.Name, Problems: problems}
	}
	kwargs, err := json.Marshal(args)
	if err != nil {
		return nil, &InvalidArguments{Contract: contract.Name, Problems: []string{err.Error()}}
	}
	if err := c.listen(); err != nil {
		return nil, err
	}
	id := uuid.NewString()
	envelope, err := json.Marshal(map[string]any{
		"body": base64.StdEncoding.EncodeToString([]byte(
			`[[], ` + string(kwargs) + `, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`)),
		"content-encoding": "utf-8",
		"content-type":     "application/json",
		"headers": map[string]any{
			"lang": "go", "task": contract.Name, "id": id, "root_id": id, "parent_id": nil, "group": nil,
			"retries": 0, "eta": nil, "expires": nil, "timelimit": []any{nil, nil}, shapeHeader: contract.Shape,
		},
		"properties": map[string]any{
			"correlation_id": id, "reply_to": c.replyChannel, "delivery_mode": 2, "priority": 0,
			"delivery_info": map[string]string{"exchange": "", "routing_key": contract.Queue},
			"body_encoding": "base64", "delivery_tag": uuid.NewString(),
		},
	})
	if err != nil {
		return nil, err
	}
	h := &Handle[T]{ID: id, client: c, contract: contract, records: make(chan []byte, 4)}
	c.mu.Lock()
	c.waiters[id] = h.records
	c.mu.Unlock()
	if _, err := c.do(ctx, "LPUSH", contract.Queue, envelope); err != nil {
		c.forget(id)
		return nil, err
	}
	return h, nil
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.waiters, id)
	c.mu.Unlock()
}

func (c *Client) do(ctx context.Context, command string, args ...any) (any, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, c.unavailable(err)
	}
	defer conn.Close()
	reply, err := conn.Do(command, args...)
	if err != nil {
		return nil, c.unavailable(err)
	}
	return reply, nil
}

// Result waits for the call's outcome: at most timeout, or the contract's bound when timeout is 0,
// and never past ctx's deadline (both end in TaskTimeout); ctx's cancellation returns ctx.Err().
func (h *Handle[T]) Result(ctx context.Context, timeout time.Duration) (T, error) {
	var zero T
	if timeout <= 0 {
		timeout = h.contract.Timeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, timeout = d, time.Until(d)
	}
	expired := time.NewTimer(time.Until(deadline))
	defer expired.Stop()
	poll := time.NewTicker(fallbackInterval)
	defer poll.Stop()
	for {
		var record []byte
		select {
		case record = <-h.records:
		case <-poll.C:
			reply, err := redis.Bytes(h.client.do(ctx, "GET", resultKeyPrefix+h.ID))
			if err == redis.ErrNil {
				continue
			} else if err != nil {
				return zero, err
			}
			record = reply
		case <-expired.C:
			return zero, &TaskTimeout{Contract: h.contract.Name, TaskID: h.ID, Timeout: timeout}
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return zero, &TaskTimeout{Contract: h.contract.Name, TaskID: h.ID, Timeout: timeout}
			}
			return zero, ctx.Err()
		}
		value, done, err := decode[T](h.contract.Name, h.ID, record)
		if done {
			h.client.forget(h.ID)
			return value, err
		}
	}
}

type storedRecord struct {
	Status    string          `json:"status"`
	Result    json.RawMessage `json:"result"`
	Traceback *string         `json:"traceback"`
}

type remoteError struct {
	Type    string `json:"exc_type"`
	Message any    `json:"exc_message"`
}

// decode maps a stored record onto the value or the error it stands for, as task_client does.
func decode[T any](contract, id string, data []byte) (T, bool, error) {
	var zero T
	var record storedRecord
	if err := json.Unmarshal(data, &record); err != nil {
		return zero, false, nil
	}
	switch record.Status {
	case "SUCCESS":
		var value T
		if err := json.Unmarshal(record.Result, &value); err != nil {
			return zero, true, &ContractMismatch{Contract: contract, TaskID: id,
				Message: "the worker's result does not fit this client's contract: " + err.Error()}
		}
		return value, true, nil
	case "FAILURE", "REVOKED":
	default: // PENDING, STARTED, PROGRESS, RETRY: not an outcome yet
		return zero, false, nil
	}
	var remote remoteError
	_ = json.Unmarshal(record.Result, &remote)
	message := messageText(remote.Message)
	if record.Status == "REVOKED" {
		return zero, true, &TaskCancelled{Contract: contract, TaskID: id, Reason: message}
	}
	switch remote.Type {
	case "NotRegistered":
		return zero, true, &UnknownTask{Contract: contract, TaskID: id, Message: message}
	case "ContractMismatch":
		return zero, true, &ContractMismatch{Contract: contract, TaskID: id, Message: message}
	}
	failed := &TaskFailed{Contract: contract, TaskID: id, RemoteType: remote.Type, RemoteMessage: message}
	if failed.RemoteType == "" {
		failed.RemoteType = record.Status
	}
	if record.Traceback != nil {
		failed.RemoteTraceback = *record.Traceback
	}
	return zero, true, failed
}

func messageText(value any) string {
	switch v := value.(type) {
	case nil:
		return ""
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, part := range v {
			parts[i] = fmt.Sprint(part)
		}
		return strings.Join(parts, " ")
	default:
		return fmt.Sprint(v)
	}
}

// task_contracts.wire.CANCEL_SCRIPT, put here by the generator: one text for every caller.
const cancelScript = `
@@CANCEL_SCRIPT@@
`

// Cancel stops the call through the documented keys: "cancelled" (it had not started and never
// runs), "terminated" (running, interruptible: the worker stops it), "running" (it finishes but
// never runs again) or "finished" (nothing changed).
func (h *Handle[T]) Cancel(ctx context.Context) (string, error) {
	record, _ := json.Marshal(map[string]any{
		"status": "REVOKED", "traceback": nil, "children": []any{}, "task_id": h.ID,
		"date_done": time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"),
		"result":    map[string]any{"exc_type": "TaskRevokedError", "exc_message": []string{"cancelled"}, "exc_module": "celery.exceptions"},
	})
	reply, err := redis.Values(h.client.do(ctx, "EVAL", cancelScript, 3, resultKeyPrefix+h.ID, runningKeyPrefix+h.ID,
		revokedKeyPrefix+h.ID, "cancelled", cancelKeepSeconds, record, "0", ""))
	if err != nil {
		var unavailable *BrokerUnavailable
		if errors.As(err, &unavailable) {
			return "", err
		}
		return "", h.client.unavailable(err)
	}
	verdict, _ := redis.String(reply[0], nil)
	if verdict != "running" {
		return verdict, nil
	}
	detail, _ := redis.Bytes(reply[1], nil)
	var running struct {
		Interruptible bool `json:"interruptible"`
	}
	if json.Unmarshal(detail, &running) == nil && running.Interruptible {
		return "terminated", nil
	}
	return "running", nil
}

// Ptr returns a pointer to v: optional parameters are pointers, nil meaning "the worker's default".
func Ptr[T any](v T) *T { return &v }

// Helpers of the generated checks.

func addProblem(problems *[]string, path, rule string, got any) {
	*problems = append(*problems, fmt.Sprintf("%s: %s (got %v)", path, rule, got))
}

func itemPath(path string, index any) string { return fmt.Sprintf("%s[%v]", path, index) }

func runeCount(text string) int { return len([]rune(text)) }

// requireFields fails when the JSON object lacks one of these fields.
func requireFields(data []byte, names ...string) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	for _, name := range names {
		if _, ok := fields[name]; !ok {
			return fmt.Errorf("field %q is missing", name)
		}
	}
	return nil
}
