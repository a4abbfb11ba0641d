// Programs written against DIOS see names, references, rights and errors
// through this one import.
@_exported public import DIOSCore
