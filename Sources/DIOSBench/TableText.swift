// Columns of the tables the benchmarks and `dios status` print.

/// `s` padded with spaces to `width` columns, on the left when `right`.
public func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return right ? fill + s : s + fill
}

/// `x` rounded to two decimal places.
public func format(_ x: Double) -> String {
    let scaled = (x * 100).rounded() / 100
    return "\(scaled)"
}
