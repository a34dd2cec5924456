// A producer and a consumer fiber joined by a bounded channel: the producer parks while the buffer
// is full, the consumer while it is empty; closing the channel ends the consumer's loop once it has
// drained what is buffered.
import WeftRuntime
import WeftSync

let total = try Runtime.run(options: .init(executors: .exact(2))) {
    let lines = Channel<String>(capacity: 64)
    let consumer = try Fiber.spawn {
        var received = 0
        var characters = 0
        for line in lines {
            received += 1
            characters += line.count
        }
        return (received, characters)
    }
    for n in 1...1000 { try lines.send("line \(n)") }
    lines.close()
    return try consumer.join()
}
print("received \(total.0) lines, \(total.1) characters")
