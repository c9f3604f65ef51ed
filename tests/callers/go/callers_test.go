// The generated Go caller against real workers (tests/callers/test_go.py runs this with go test).
package callers

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	tasks "example.com/tasks"
)

func client(t *testing.T, env string) *tasks.Client {
	t.Helper()
	c, err := tasks.NewClient(os.Getenv(env))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAdd(t *testing.T) {
	sum, err := client(t, "CALLERS_MAIN_URL").MathAdd(context.Background(), 4, 7)
	if err != nil || sum != 11 {
		t.Fatalf("add(4, 7) = %v, %v", sum, err)
	}
}

func TestMulByNamedArguments(t *testing.T) {
	product, err := client(t, "CALLERS_MAIN_URL").MathMulWith(context.Background(), tasks.MathMulArgs{Y: 7, X: 6})
	if err != nil || product != 42 {
		t.Fatalf("mul(y=7, x=6) = %v, %v", product, err)
	}
}

func TestStatsIsTyped(t *testing.T) {
	var stats tasks.Stats
	stats, err := client(t, "CALLERS_MAIN_URL").MathStats(context.Background(), []float64{1, 2, 3.5})
	if err != nil || stats.Count != 3 || stats.Total != 6.5 {
		t.Fatalf("stats = %+v, %v", stats, err)
	}
}

func TestModelsOptionalsAndDefaults(t *testing.T) {
	c := client(t, "CALLERS_MAIN_URL")
	got, err := c.CallersDescribeWith(context.Background(), tasks.CallersDescribeArgs{
		Count: 2, Unit: "cm", Tag: "ab", Points: []tasks.Point{{X: 1, Y: 2, Label: tasks.Ptr("p")}, {X: 3, Y: 4}},
		Flags: map[string]bool{"on": true}, Loud: tasks.Ptr(true),
	})
	if err != nil || got.Text != "2 CM AB 2 POINTS" || got.Scale != nil || *got.Points[0].Label != "p" ||
		got.Points[1].Label != nil || !got.Flags["on"] {
		t.Fatalf("describe = %+v, %v", got, err)
	}
	plain, err := c.CallersDescribe(context.Background(), 0, "in", "x", []tasks.Point{}, map[string]bool{})
	if err != nil || plain.Text != "0 in x 0 points" {
		t.Fatalf("describe with defaults = %+v, %v", plain, err)
	}
}

func TestInvalidCallPublishesNothing(t *testing.T) {
	for _, env := range []string{"CALLERS_QUIET_URL", "CALLERS_DOWN_URL"} {
		_, err := client(t, env).CallersDescribe(context.Background(), 101, "mm", "AB", []tasks.Point{}, nil)
		var invalid *tasks.InvalidArguments
		if !errors.As(err, &invalid) {
			t.Fatalf("%s: want InvalidArguments, got %v", env, err)
		}
		text := strings.Join(invalid.Problems, "\n")
		for _, part := range []string{"count: must be <= 100", "unit: must be one of", "tag: must match", "flags: must be"} {
			if !strings.Contains(text, part) {
				t.Fatalf("problems lack %q: %s", part, text)
			}
		}
	}
}

func TestFailureNamesTheRemoteError(t *testing.T) {
	_, err := client(t, "CALLERS_MAIN_URL").MathDiv(context.Background(), 1, 0)
	var failed *tasks.TaskFailed
	if !errors.As(err, &failed) || failed.RemoteType != "ZeroDivisionError" {
		t.Fatalf("div(1, 0): %v", err)
	}
}

func TestUnservedNameIsUnknownTask(t *testing.T) {
	_, err := client(t, "CALLERS_MAIN_URL").CallersUnserved(context.Background(), 1)
	var unknown *tasks.UnknownTask
	if !errors.As(err, &unknown) {
		t.Fatalf("unserved: %v", err)
	}
}

func TestNoWorkerTimesOutWithinTheBound(t *testing.T) {
	start := time.Now()
	_, err := client(t, "CALLERS_MAIN_URL").CallersIdle(context.Background(), 1) // its bound is 1 s
	var timeout *tasks.TaskTimeout
	if elapsed := time.Since(start); !errors.As(err, &timeout) || elapsed > 2*time.Second || elapsed < 900*time.Millisecond {
		t.Fatalf("idle: %v after %v", err, elapsed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond) // the bound, overridden
	defer cancel()
	start = time.Now()
	_, err = client(t, "CALLERS_QUIET_URL").MathAdd(ctx, 1, 2)
	if elapsed := time.Since(start); !errors.As(err, &timeout) || elapsed > 1300*time.Millisecond {
		t.Fatalf("add with no worker: %v after %v", err, elapsed)
	}
}

func TestRedisDownIsBrokerUnavailable(t *testing.T) {
	start := time.Now()
	_, err := client(t, "CALLERS_DOWN_URL").MathAdd(context.Background(), 1, 2)
	var down *tasks.BrokerUnavailable
	if elapsed := time.Since(start); !errors.As(err, &down) || elapsed > 2500*time.Millisecond {
		t.Fatalf("redis down: %v after %v", err, elapsed)
	}
}

func TestEvolvedWorkerAnswersTheOlderCaller(t *testing.T) {
	sum, err := client(t, "CALLERS_EVOLVED_URL").MathAdd(context.Background(), 4, 7)
	if err != nil || sum != 111 { // the worker's add gained z: int = 100
		t.Fatalf("add(4, 7) on the evolved worker = %v, %v", sum, err)
	}
}

func TestBreakingChangesAreContractMismatch(t *testing.T) {
	c := client(t, "CALLERS_EVOLVED_URL")
	var mismatch *tasks.ContractMismatch
	if _, err := c.MathMul(context.Background(), 6, 7); !errors.As(err, &mismatch) { // the worker requires z
		t.Fatalf("mul on the evolved worker: %v", err)
	}
	if _, err := c.MathStats(context.Background(), []float64{1}); !errors.As(err, &mismatch) { // no total
		t.Fatalf("stats on the evolved worker: %v", err)
	}
}

func TestCancelBeforeStart(t *testing.T) {
	c := client(t, "CALLERS_MAIN_URL")
	handle, err := c.SubmitCallersIdle(context.Background(), tasks.CallersIdleArgs{X: 1})
	if err != nil {
		t.Fatal(err)
	}
	verdict, err := handle.Cancel(context.Background())
	if err != nil || verdict != "cancelled" {
		t.Fatalf("cancel: %v, %v", verdict, err)
	}
	_, err = handle.Result(context.Background(), 0)
	var cancelled *tasks.TaskCancelled
	if !errors.As(err, &cancelled) {
		t.Fatalf("result after cancel: %v", err)
	}
}
