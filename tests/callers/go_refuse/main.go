// Must not compile: math.add takes integers (tests/callers/test_go.py checks that go build refuses it).
package main

import (
	"context"

	tasks "example.com/tasks"
)

func main() {
	c, _ := tasks.NewClient("redis://127.0.0.1:6379/0")
	c.MathAdd(context.Background(), "a", 7)
}
