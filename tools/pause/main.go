// The pod sandbox ("pause") process of the single-node cluster: it holds a pod's namespaces,
// reaps orphaned children and exits on SIGINT/SIGTERM. containerd's sandbox_image points at the
// image built from it (scripts/cluster.sh), since no registry's pause image is reachable.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
