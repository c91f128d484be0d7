// Package screen is the automatic output screen (the egress checker): the second independent
// line after differential privacy, which looks at each concrete output a job wants to release
// and reports anything from which raw data could be reconstructed. It is a program, not a
// person: "review" and "reviewer" in cleanroom name the human review of held outputs.
//
// Every job kind (SQL results, HE verification answers, model parameters) presents what it
// wants to release through one interface, Output; the engine adapts its result to it. The
// screen returns policy.Finding values (a stable code, a severity and a message that names
// positions, never data values), which the engine passes into the egress policy's input, and
// the rows to suppress:
//
//	job result ──► adapter (Output) ──► Screener.Review ──► Screening{Findings, Suppressed}
//	                                          │                    │
//	                    RawSet (keyed hashes of identifier         ▼
//	                    and sensitive values, built by the  policy.EgressInput.Findings
//	                    worker: rawset) and Limits  ──► data.cleanroom.egress.decision
//
// The default egress policy denies on any high finding and holds the result for a reviewer
// (a person) on any medium one; low findings are informational.
//
// # Checks
//
//	check          code                     severity  when
//	names          (identifier codes below, reported as "the name of column N"; names are
//	               never looked up among raw values: see "What is scanned")
//	lineage        identifier_lineage       high      a column derives from an identifier-tagged
//	                                                  column other than by counting units or rows
//	               sensitive_group_key      low       a group key derives from a sensitive column
//	                                                  (its values leave as keys, chosen by a public
//	                                                  domain or DP partition selection; a policy
//	                                                  may hold such outputs for a person)
//	               column_kind_unknown      high      a column kind the screen does not know
//	identifiers    resident_id_in_output    high      GB 11643 resident ID number (check digit)
//	               uscc_in_output           high      GB 32100 unified social credit code
//	               mobile_in_output         high      mainland mobile number
//	               bank_card_in_output      high      16-19 digits, card-issuer prefix, Luhn
//	               email_in_output          high      e-mail address (pii.ValidEmail)
//	raw_values     raw_value_in_output      high      a keyed hash of a data-derived output value
//	                                                  is in the RawSet (noisy numbers, answers,
//	                                                  parameters, and group keys of OriginData;
//	                                                  never names, errors, OriginQuery or
//	                                                  OriginPublic keys)
//	small_groups   small_groups_suppressed  low       rows with fewer noisy privacy units than
//	                                                  Limits.MinUnitsPerGroup (listed in
//	                                                  Screening.Suppressed)
//	               unit_count_unavailable   low       a minimum is set but the output has no
//	                                                  per-row unit counts
//	limits         rows_over_limit          high      more rows than Limits.MaxRows
//	               cells_over_limit         high      more cells than Limits.MaxCells
//	               bytes_over_limit         high      more bytes than Limits.MaxBytes
//	differencing   differencing_suspected   medium    a DifferenceProbe (WithDifferencing) counts
//	                                                  fewer units than the minimum on which this
//	                                                  output's filter and an earlier query's
//	                                                  disagree (0 included: an equivalent filter
//	                                                  draws fresh noise on the same answer)
//	(any)          reviewer_failed          high      a check panicked, could not run, or the
//	                                                  screening was cancelled: fail closed
//
// Findings are aggregated: one per code and place (a column's cells, a column's name, the
// error messages), counting the rows and naming the first, so their number is bounded by the
// output's width, not its length.
//
// # What is scanned
//
// The rule: nothing observable may depend on the raw data except through DP, and a raw-value
// lookup is a test against the raw data whose verdict is not DP. So the raw-value set is
// consulted only for what came from the data; what the applicant chose is checked by tests
// whose verdict depends on the text alone.
//
//	output string                                   identifier scan    raw-value lookup
//	column names (aliases, names derived from the   yes (the gate      no
//	  query's own names: count_<alias>, _ci_low)    refuses first)
//	error messages (codes, names, fixed text)       yes                no
//	group keys the query may write (OriginQuery):   yes (the gate      no, not even their
//	  a literal in a value position — CASE THEN/    refuses literals   data-derived cells
//	  ELSE, LEAST/GREATEST arguments, a clamp —     first)
//	  or a value computed with one
//	group keys of a public domain (OriginPublic):   yes                no
//	  the catalog's, or one the SQL enumerates
//	group keys from the data (OriginData): columns  yes                yes
//	  and functions of them without a literal in a
//	  value position, chosen by partition selection
//	numbers a DP mechanism released (Value.Noisy:   no                 yes (number rule below)
//	  noisy values, their intervals' ends, numbers
//	  post-processed from them only)
//	answers, parameters, other numbers              yes                yes (number rule below)
//
// Why a key the query may write is not looked up even in the cells that came from the data
// (CASE WHEN c THEN 'x' ELSE district END): once the worker has coerced the literal's type a
// cell cannot be told apart reliably from a data value ('1990-1-1' leaves as 1990-01-01), and
// a wrong guess would be the membership oracle again. Such cells are still scanned for
// identifiers, and lineage covers their columns. The property is pinned by
// TestNoVerdictOnAnApplicantChosenStringDependsOnTheRawData (and, through the HTTP API, by the
// server's TestMembershipTestsThroughAliasesAndLiteralsGetOneVerdictOverHTTP): the screening of
// an output is the same whether or not the raw data holds a string the applicant wrote.
//
// Residual: the lookup of a data-derived key is itself a test against the raw set; its verdict
// can depend on one unit's sensitive value matching a key that partition selection released.
// Which keys appear is DP; whether one of them equals some raw identifier or sensitive value is
// not, and is accepted as the price of catching mis-tagged columns.
//
// Text is normalised first: full-width forms (０-９, Ａ-Ｚ, ＠, the
// ideographic space) fold to ASCII, letters are upper-cased, and a second pass removes up to
// three spaces or hyphens between digits, so "138 1234 5678" and "138-1234-5678" are seen as
// "13812345678"; both passes are scanned, so two numbers separated by a space are still seen
// one by one. Resident ID numbers and unified social credit codes are looked for in every
// 18-character window (an identifier glued to other characters is still found); mobile and
// card numbers must be whole digit runs (a mobile number inside a longer run is not one).
//
// A noisy number (Value.Noisy) is not an identifier candidate: its digits are noise around an
// aggregate, not a value any record holds, and at a tiny epsilon a noisy count near 1e10 reads
// as a mobile number by chance — a finding there would deny and charge a harmless output while
// protecting no one (TestNoisyNumbersAreNotIdentifierCandidatesButKeysAre in the engine). Group
// keys, answers, parameters and every string are still scanned.
//
// Numbers are scanned when integral. A float64 carries about 15.9 significant digits and
// represents every integer below 2^53 (≈ 9.007e15, 16 digits) exactly, so 11-digit mobile
// numbers and 16-digit card numbers below 2^53 survive in a float64 and are checked like
// text. An 18-digit resident ID cannot survive: its last digits (the check digit among them)
// are rounded away. What does survive is its leading region code and birth date, so an
// integral float64 of 17 or 18 digits whose first 17 digits, completed with their own check
// digit, form a valid resident ID is reported as one. Int values are exact and scanned as
// text (an 18-digit ID in an int64 is checked with its check digit); a 17-digit Int is also
// checked as an ID without its check digit.
//
// # False-positive rules
//
//   - Bank cards: only runs of 16-19 digits whose issuer prefix is plausible (4, 5, 35, 60,
//     62, 65, 95, 2221-2720) and whose Luhn digit is right. A 13-15 digit run passes Luhn one
//     time in ten by chance; requiring the length and prefix keeps ordinary long numbers
//     (order numbers, timestamps) from being reported, at the price of missing 15-digit Amex
//     numbers, which the platform's data do not hold.
//   - Unified social credit codes: an all-digit window inside a longer run of digits is not
//     a candidate (any 18 digits pass the mod-31 check one time in 31); a code on its own or
//     glued to letters is.
//   - Mobile numbers: an 11-digit run starting 13-19, or 13/15 digits starting 86/0086; a run
//     of 10 or 12 digits is not one.
//   - Raw values: strings and tokens shorter than rawset.MinRawLength bytes are neither put into a
//     set nor looked up (short values such as "M" or "北京" collide by chance, not by
//     leaking). String cells of a group-key column whose lineage names a sensitive column are
//     not looked up: they are that column's values by construction, and the lineage check
//     reports sensitive_group_key so the policy can decide. Numbers are looked up only when the
//     column derives from an identifier other than by counting, or when they are integral
//     with at least 11 digits (a size that could encode an identifier): a DP aggregate such as
//     a noisy mean of cost equals some row's cost by chance, and reporting that would deny
//     every such result while protecting no one.
//   - Unit counts: when MinUnitsPerGroup is set and the output carries no per-row unit counts
//     (HE answers, model parameters), unit_count_unavailable is low: such outputs have no
//     groups to suppress, and SQL groups are already protected by DP partition selection.
//
// Suppressed rows are still scanned: the screen reports what the output holds. The engine
// then removes them (their unit counts are noisy, so withholding is DP post-processing) and
// tells the egress policy how many it removed (policy.Output.Suppressed).
//
// # Raw values
//
// The set comes from the sandbox worker: at registration it hashes every distinct value of
// the dataset's identifier and sensitive columns (package rawset, which owns the
// canonical forms and the keyed hash) and writes the set beside the snapshot; only keyed
// hashes leave the worker. Each value's canonical form (rawset.CanonicalString, and
// rawset.CanonicalNumber for values that parse as numbers) is hashed with HMAC-SHA256 under
// the engine's raw-value key (DataDir/keys/rawvalue.key, 32 random bytes), truncated to 64
// bits. For a job, the engine loads the sets of the datasets it read and passes their union
// (rawset.Union) to WithRawValues; this package keeps only the lookup side. The screen
// canonicalises output values the same way (rawset.Fold and rawset.MergeDigitSeparators are
// also what the identifier scans read), so a value matches whichever way it is written. With
// a 1M-entry set and 10^5 lookups per screening the chance of any 64-bit collision is about
// 5e-9.
//
// # Limitations
//
// The scans recognise formats, not meaning: an identifier that has been transformed
// (reversed, re-encoded, split across cells) is not found, and a name inside a longer run of
// Chinese text is not a separate token. These are the first line's job (lineage and DP); the
// screen catches the plain leaks a bug or a bypass would let through.
package screen
