internal import CWeftContext

/// Version of the context-switch ABI compiled into this build.
public var weftContextABIVersion: Int { Int(weft_context_abi_version()) }
