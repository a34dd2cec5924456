// Generators and coroutines on WeftContext alone: no scheduler, no event loop.
import WeftContext

// 1. A generator is a plain Swift Sequence.
let fibonacci = Generator<Int> { yield in
    var (a, b) = (0, 1)
    while true {
        try yield(a)
        (a, b) = (b, a + b)
    }
}
print("fibonacci:", Array(fibonacci.prefix(15)).map(String.init).joined(separator: " "))
print("first fibonacci number above 1000:", fibonacci.first { $0 > 1000 }!)

// 2. A pipeline of coroutines: numbers -> primes (trial division) -> pairs of twin primes. Each
// stage iterates the one before it inside its own body.
func twinPrimes() -> Generator<(Int, Int)> {
    let numbers = Generator<Int>(stack: .compact) { yield in
        for n in 2... { try yield(n) }
    }
    let primes = Generator<Int>(stack: .compact) { yield in
        var found: [Int] = []
        for n in numbers where !found.contains(where: { n % $0 == 0 }) {
            found.append(n)
            try yield(n)
        }
    }
    return Generator<(Int, Int)>(stack: .compact) { yield in
        var previous = 2
        for p in primes {
            if p - previous == 2 { try yield((previous, p)) }
            previous = p
        }
    }
}
print("twin primes:", twinPrimes().prefix(8).map { "(\($0.0), \($0.1))" }.joined(separator: " "))

// 3. A coroutine that takes input on every resume: a running average.
let average = try Coroutine<Double, Double, Int> { first, yielder in
    var total = first
    var count = 1
    while true {
        let next = try yielder.yield(total / Double(count))
        if next < 0 { return count }
        total += next
        count += 1
    }
}
for sample in [4.0, 8.0, 15.0, 16.0, 23.0, 42.0] {
    if case .yielded(let mean) = try average.resume(sample) { print("sample \(sample) -> running mean \(mean)") }
}
if case .finished(let count) = try average.resume(-1) { print("average finished after \(count) samples") }

// 4. A suspended coroutine moves between OS threads: each resume runs on the resuming thread.
let traveller = try Coroutine<String, String, String> { first, yielder in
    var log = [first]
    for _ in 0..<3 { log.append(try yielder.yield("visited \(log.count) place(s)")) }
    return log.joined(separator: " -> ")
}
_ = try traveller.resume("main thread")
for name in ["thread A", "thread B", "thread C"] {
    let box = UncheckedBox(traveller)
    Thread(name: name) { name in
        switch try? box.value.resume(name) {
        case .yielded(let note)?: print("traveller on \(name): \(note)")
        case .finished(let route)?: print("traveller on \(name): finished, route \(route)")
        case nil: print("traveller on \(name): resume failed")
        }
    }
}

// 5. Dropping a suspended coroutine unwinds it: `yield` throws CoroutineCancelled.
do {
    let worker = Generator<Int> { yield in
        defer { print("worker: unwound after being dropped, cleanup ran") }
        for n in 0... { try yield(n) }
    }
    print("took:", Array(worker.prefix(3)))
}
print("stacks in use after the demo:", StackPool.shared.statistics.guardedInUse + StackPool.shared.statistics.compactInUse)
