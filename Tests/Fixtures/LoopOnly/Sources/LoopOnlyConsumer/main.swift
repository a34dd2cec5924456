import WeftLoop

print("WeftLoop ABI \(weftLoopABIVersion)")
