/// The `loop` suite (WeftLoop): filled in by the loop layer's work.
func runLoopBenchmarks() throws {
    print("loop: no figures yet")
}
