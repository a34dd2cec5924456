/// The `context` suite (WeftContext): filled in by the context layer's work.
func runContextBenchmarks() throws {
    print("context: no figures yet")
}
