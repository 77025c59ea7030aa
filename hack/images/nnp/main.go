// Command nnp prints its effective uid. Installed setuid-root, it shows whether no_new_privs
// stopped the privilege gain (critest's NoNewPrivs specs).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
