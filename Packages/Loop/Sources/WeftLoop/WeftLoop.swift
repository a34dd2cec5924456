internal import CWeftLoop
import SystemPackage

/// Version of the loop ABI compiled into this build.
public var weftLoopABIVersion: Int { Int(weft_loop_abi_version()) }
