package collective_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/c1b99f93/cleanroom/he/collective"
)

// Two bureaus release a DP count per district without either — or the platform — seeing the
// other's counts. Messages travel as bytes through in-memory inboxes; HTTP would carry the same.
func Example() {
	domains := []string{"medical-insurance", "health-commission"}
	dir := collective.Directory{}
	keys := map[string]ed25519.PrivateKey{}
	for _, n := range append(domains, "platform") {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		dir[n], keys[n] = pub, priv
	}
	cfg := func(name string) collective.Config {
		return collective.Config{Name: name, SigningKey: keys[name], Directory: dir, Domains: domains, Aggregator: "platform"}
	}
	agg, _ := collective.NewAggregator(cfg("platform"))
	parties := map[string]*collective.Party{}
	for _, d := range domains {
		parties[d], _ = collective.NewParty(cfg(d))
	}
	receiver, _ := collective.NewReceiver(cfg("")) // the applicant
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Rounds 1–2: the key ceremony (once; each domain then stores MarshalKey in its data dir).
	inbox := make(collective.MemoryInbox, len(domains))
	for _, d := range domains {
		m, _ := parties[d].KeyGen("ceremony-2026")
		inbox.Send(m.Encode())
	}
	keyMsg, err := agg.CollectKeyGen(ctx, "ceremony-2026", inbox)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range domains {
		if err := parties[d].AcceptPublicKey(keyMsg); err != nil {
			fmt.Println(err)
			return
		}
	}

	// The job: 4 districts, counts (each person in one district: L0 = 1, L∞ = 1), ε = 1, δ = 1e-6.
	noise, _ := collective.NoiseShares(collective.Budget{Epsilon: 1, Delta: 1e-6, L0: 1, LInf: 1}, len(domains))
	job := collective.Job{ID: "job-42", Key: agg.KeyID(), Partitions: 4, Receiver: receiver.KeyDigest(), Noise: noise}
	counts := map[string][]int64{
		"medical-insurance": {120, 45, 300, 8},
		"health-commission": {80, 55, 200, 2},
	}

	// Round 3: each domain adds its noise share and encrypts; round 4: the platform adds.
	for _, d := range domains {
		m, _ := parties[d].Encrypt(job, counts[d])
		inbox.Send(m.Encode())
	}
	sum, err := agg.CollectInputs(ctx, job, receiver.PublicKey(), inbox)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Round 5: each domain checks the sum and key-switches it to the applicant; round 6: collect.
	for _, d := range domains {
		m, err := parties[d].KeySwitch(job, sum)
		if err != nil {
			fmt.Println(err)
			return
		}
		inbox.Send(m.Encode())
	}
	result, err := agg.CollectKeySwitch(ctx, job, sum, inbox)
	if err != nil {
		fmt.Println(err)
		return
	}
	totals, err := receiver.Open(job, result)
	if err != nil {
		fmt.Println(err)
		return
	}
	exact := []int64{200, 100, 500, 10}
	inside := 0
	for i, v := range totals {
		ci, _ := collective.CI(v, noise, 1e-9)
		if ci.Lower <= exact[i] && exact[i] <= ci.Upper {
			inside++
		}
	}
	fmt.Printf("%d noisy totals released; %d inside their 1−1e-9 interval around the exact total\n", len(totals), inside)
	// Output: 4 noisy totals released; 4 inside their 1−1e-9 interval around the exact total
}
