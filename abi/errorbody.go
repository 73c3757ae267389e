package abi

// JSONHeaders are the response headers of every local JSON reply.
var JSONHeaders = [][2]string{{"content-type", "application/json"}}
