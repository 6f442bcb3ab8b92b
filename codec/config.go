package codec

// Config is how a process configures its codec; main reads it from the
// environment (EnvKeys, EnvCompress) or flags.
type Config struct {
	// KeysFile is the path of the key file (see ParseKeys). Empty: no keys,
	// payloads are written in plaintext and encrypted ones cannot be read.
	KeysFile string
	// Compress compresses payloads before encrypting them. Default false.
	Compress bool
}

// Load builds the codec cfg describes, reading its key file.
func Load(cfg Config) (*Codec, error) {
	var keys Keys
	if cfg.KeysFile != "" {
		var err error
		if keys, err = LoadKeys(cfg.KeysFile); err != nil {
			return nil, err
		}
	}
	return New(keys, Options{Compress: cfg.Compress})
}
