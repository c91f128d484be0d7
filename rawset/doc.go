// Package rawset has one job: keyed hashes of raw values, built inside the sandbox worker,
// that let the output screen recognise a raw value in an output without holding any.
//
//	worker (holds raw rows)                          engine (never holds raw rows)
//	identifier and sensitive columns                 policy/screen
//	  ──► CanonicalString / CanonicalNumber            output string or number
//	  ──► Keyer: HMAC-SHA256 under the platform's        ──► same canonical forms, same Keyer
//	      raw-value key, truncated to 64 bits            ──► HashSet.Contains (a Union over
//	  ──► HashSet ──WriteTo──► <snapshot>.rawset ──►          the job's datasets)
//
// A HashSet holds only keyed hashes, so it may leave the worker, be persisted beside the
// snapshot and be read by the engine. Whoever holds the key can test guesses against a set,
// so the key stays inside the platform (the engine's DataDir/keys) and is never logged: Key
// and Keyer print redacted.
//
// The package imports only the standard library: the worker builds sets with it and the
// output screen looks values up with it, and neither side may pull the other's dependencies.
package rawset
