import WeftContext
import WeftLoop

print("suites: context loop")
