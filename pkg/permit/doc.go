// Package permit enforces a task's synchronisation points system-wide, on
// JetStream key-value buckets, so that every agent of every workflow sees
// the same permits and a restart of any process (or of the server, with
// file storage) loses none:
//
//   - Concurrency keys (a lock is a key with limit 1): one entry per slot,
//     "k.<key>.<slot>" in the permits bucket, taken with Create (a
//     compare-and-set: it fails if the slot is held), renewed by its holder
//     with Update on its own revision at a quarter of the bucket's TTL,
//     deleted (on its own revision) when the task ends. The bucket's TTL
//     (streams.Config.PermitTTL) ages out the entry of a holder that died,
//     so its permit comes back within the TTL; an entry written by anyone
//     else (no renewals) ages out the same way. A holder that cannot renew
//     in time learns it lost the permit (Held.Lost) before another can
//     take it.
//   - Per-type caps set at run time ("type.<T>" in the limits bucket,
//     SetTypeLimit): a semaphore keyed by the type, "t.<type>.<slot>" in
//     the permits bucket, taken the same way. Agents watch the limits
//     bucket, so a task of a type without a cap costs no round trip.
//   - Rates: a token bucket per key (or per type) kept as one number in
//     the rates bucket — the theoretical arrival time of the next task
//     (GCRA) — advanced with compare-and-set; a task reserves its start at
//     most MaxReserve ahead and waits for it.
//
// Deadlock: a task holds at most one concurrency key and one type cap, and
// Try takes everything it needs or nothing (what it took it gives back
// before it returns), so no task waits while holding what another waits
// for.
package permit
