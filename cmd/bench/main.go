// Command bench measures prodsearch: `settings` compares backbones and
// describe settings on training classes (never the test split); `speed`
// times decode, resize, inference and search against a PyTorch peer.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench settings|speed|table [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "settings":
		err = runSettings(ctx, os.Args[2:], os.Stdout)
	case "speed":
		err = runSpeed(ctx, os.Args[2:], os.Stdout)
	case "table":
		err = runTable(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown benchmark %q (want settings, speed or table)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
