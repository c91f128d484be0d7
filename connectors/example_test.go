package connectors_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/c1b99f93/cleanroom/connectors"
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "visits.csv")
	os.WriteFile(path, []byte("district,age,amount,visit\n浦东,34,120.5,2024-03-01\n黄浦,,88,2024-03-02\n"), 0o600)

	rr, err := connectors.Open(context.Background(), connectors.KindCSV, path, connectors.Options{BatchRows: 1024})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rr.Release()
	fmt.Println(rr.Schema().Fields())
	for rr.Next() {
		// The batch is valid until the next call to Next; Retain it to keep it longer.
		fmt.Println(rr.RecordBatch().NumRows(), "rows")
	}
	if err := rr.Err(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// [district: type=utf8, nullable age: type=int64, nullable amount: type=float64, nullable visit: type=date32, nullable]
	// 2 rows
}

func ExampleError() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "claims.csv")
	os.WriteFile(path, []byte("id,amount\n1,10\n2,20\n3,30\n4,40\n5\n"), 0o600)

	rr, err := connectors.Open(context.Background(), connectors.KindCSV, path, connectors.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rr.Release()
	for rr.Next() {
	}
	var e *connectors.Error
	if errors.As(rr.Err(), &e) {
		fmt.Println(e.Code, e.Row)
		fmt.Println(e)
	}
	// Output:
	// malformed_input 5
	// connectors: malformed_input: claims.csv row 5 line 6: wrong number of fields
}
