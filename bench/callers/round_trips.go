// Round trips of the generated Go caller: `round_trips URL CALLS` prints the seconds of each call as JSON.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	tasks "example.com/tasks"
)

func main() {
	calls, _ := strconv.Atoi(os.Args[2])
	client, err := tasks.NewClient(os.Args[1])
	if err != nil {
		panic(err)
	}
	defer client.Close()
	ctx := context.Background()
	call := func() {
		if sum, err := client.MathAdd(ctx, 4, 7); err != nil || sum != 11 {
			fmt.Fprintln(os.Stderr, "add(4, 7):", sum, err)
			os.Exit(1)
		}
	}
	for i := 0; i < 30; i++ { // warm-up, as the Python sides get
		call()
	}
	times := make([]float64, 0, calls)
	for i := 0; i < calls; i++ {
		started := time.Now()
		call()
		times = append(times, time.Since(started).Seconds())
	}
	json.NewEncoder(os.Stdout).Encode(times)
}
