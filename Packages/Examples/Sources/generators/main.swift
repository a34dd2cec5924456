import WeftContext

print("WeftContext ABI \(weftContextABIVersion)")
