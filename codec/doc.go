// Package codec encrypts the sagas' Temporal payloads: a
// converter.PayloadCodec with AES-256-GCM under a key ring read from a key
// file (the first key encrypts, every key decrypts, so keys rotate), the
// data and failure converters every client and worker of the system is
// built with, and the handler of a codec server through which the Temporal
// Web UI decodes what it shows.
//
// It is part of the public toolkit, beside events and contract, because the
// payload format crosses process boundaries: any process that starts,
// signals or reads a saga — a team's own service included — must encode
// and decode with it.
//
// Search attributes and workflow ids are not payloads: the Temporal server
// indexes them in plaintext, so they must not carry secrets.
package codec
