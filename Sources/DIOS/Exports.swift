// Programs written against DIOS see names, references, rights and errors through
// this one import, and node code sees the kernel's public types (IdlePolicy,
// InstanceCounters, KernelInstance — whose calls are package-internal).
@_exported public import DIOSCore
@_exported public import DIOSKernel
@_exported public import DIOSProcess
