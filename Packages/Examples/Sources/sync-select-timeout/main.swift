// A select over a message channel and a stop event, with a timeout: the loop prints messages, says
// when it was idle for 50 ms, and ends when the stop event is set.
import WeftRuntime
import WeftSync

enum Event {
    case message(String?)
    case stop
}

try Runtime.run {
    let messages = Channel<String>()
    let stop = ResetEvent()
    let idleSeen = ResetEvent()
    let sender = try Fiber.spawn {
        try messages.send("hello")
        try messages.send("world")
        try idleSeen.wait()  // after the receiver has timed out once
        stop.set()
    }
    loop: while true {
        do {
            let event = try select(
                messages.onReceive().map { Event.message($0) },
                stop.onWait().map { Event.stop },
                timeout: .milliseconds(50))
            switch event {
            case .message(let text?): print("message: \(text)")
            case .message(nil): break loop
            case .stop:
                print("stop")
                break loop
            }
        } catch SyncError.timedOut {
            print("idle for 50 ms")
            idleSeen.set()
        }
    }
    try sender.join()
}
