package store

import "syscall"

// mmapFlags pre-faults the whole file at open: start-up reads every
// descriptor once, and one populate call is several times cheaper than a
// page fault per 4 KiB.
const mmapFlags = syscall.MAP_POPULATE
