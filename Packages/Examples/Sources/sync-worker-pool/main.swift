// A pool of four worker fibers sharing one job channel; results come back on another channel.
// Every job is taken by exactly one worker; closing the job channel lets the workers finish.
import WeftRuntime
import WeftSync

let sum = try Runtime.run(options: .init(executors: .exact(2))) {
    let jobs = Channel<Int>(capacity: 16)
    let results = Channel<Int>(capacity: 16)
    let handled = Channel<Int>(capacity: 4)
    let workers = Group()
    for _ in 0..<4 {
        try workers.spawn {
            var count = 0
            for n in jobs {
                try results.send(n * n)
                count += 1
            }
            try handled.send(count)
        }
    }
    let feeder = try Fiber.spawn {
        for n in 1...100 { try jobs.send(n) }
        jobs.close()
    }
    var sum = 0
    for _ in 1...100 { sum += try results.receive() }
    try feeder.join()
    try workers.wait()
    var jobsHandled = 0
    for _ in 0..<4 { jobsHandled += try handled.receive() }
    print("jobs handled: \(jobsHandled)")
    return sum
}
print("sum of squares 1...100: \(sum)")
