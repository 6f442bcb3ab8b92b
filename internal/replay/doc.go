// Package replay replays workflow histories against workflow code: the gate
// a deploy passes when every recorded or running saga still replays on the
// new code, and fails with the non-determinism error of each one that does
// not.
//
// Histories come from files, in the formats the Temporal CLI writes
// (`temporal workflow show --output json`) and the Web UI downloads
// (encoded, decoded or readable), or from a server; the caller chooses the
// workflow registrations, the data converter (to read encrypted payloads)
// and how many histories are loaded and replayed at once.
package replay
