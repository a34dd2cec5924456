import CWeftCurl
import Glibc
import SystemPackage
import WeftLoop

/// Drives libcurl's multi interface from a WeftLoop alone: curl tells us which sockets to watch
/// (CURLMOPT_SOCKETFUNCTION) and when to call it back (CURLMOPT_TIMERFUNCTION); readiness polls on
/// curl's own descriptors and one loop timer answer both.
final class CurlDriver {
    /// One transfer: its URL, the bytes received, its outcome.
    final class Transfer {
        let url: String
        var body: [UInt8] = []
        var result: CURLcode = CURLE_OK
        var status = 0
        var done = false
        init(url: String) { self.url = url }
    }

    /// One socket curl asked us to watch. Lives until curl removes it and its poll has completed.
    final class Watch {
        let fd: Int32
        let operation = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
        var events: Int16 = 0
        var removed = false
        var inCallback = false
        unowned let driver: CurlDriver
        init(fd: Int32, driver: CurlDriver) {
            self.fd = fd
            self.driver = driver
            operation.initialize(to: .nop())
        }
        deinit { operation.deallocate() }
    }

    let loop: Loop
    let multi: UnsafeMutableRawPointer
    private let timer = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
    private var wantedTimeout: Int? = nil
    private var handles: [UnsafeMutableRawPointer] = []
    private(set) var transfers: [Transfer] = []
    private var running: Int32 = 0
    private var retained: [Watch] = []

    init(loop: Loop) {
        self.loop = loop
        multi = curl_multi_init()
        timer.initialize(to: .nop())
        let context = Unmanaged.passUnretained(self).toOpaque()
        _ = weft_curl_multi_callbacks(multi, CurlDriver.socketCallback, CurlDriver.timerCallback, context)
    }

    deinit {
        for easy in handles {
            curl_multi_remove_handle(multi, easy)
            curl_easy_cleanup(easy)
        }
        curl_multi_cleanup(multi)
        timer.deallocate()
    }

    func add(url: String) {
        let transfer = Transfer(url: url)
        transfers.append(transfer)
        let easy = curl_easy_init()!
        handles.append(easy)
        _ = weft_curl_easy_prepare(easy, url, CurlDriver.writeCallback, Unmanaged.passUnretained(transfer).toOpaque())
        curl_multi_add_handle(multi, easy)
    }

    /// Runs the loop until every transfer has finished and curl holds no socket or timer.
    func run() throws {
        try loop.run()
    }

    private static let writeCallback: weft_curl_write_fn = { data, size, count, userdata in
        let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
        let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
        transfer.body.append(contentsOf: bytes)
        return size * count
    }

    private static let socketCallback: weft_curl_socket_fn = { _, fd, what, userp, socketp in
        let driver = Unmanaged<CurlDriver>.fromOpaque(userp!).takeUnretainedValue()
        driver.socketChanged(fd: fd, what: what, existing: socketp)
        return 0
    }

    private static let timerCallback: weft_curl_timer_fn = { _, timeout, userp in
        let driver = Unmanaged<CurlDriver>.fromOpaque(userp!).takeUnretainedValue()
        driver.timerChanged(timeout: timeout)
        return 0
    }

    private func socketChanged(fd: Int32, what: Int32, existing: UnsafeMutableRawPointer?) {
        let watch: Watch
        if let existing {
            watch = Unmanaged<Watch>.fromOpaque(existing).takeUnretainedValue()
        } else {
            if what == CURL_POLL_REMOVE { return }
            watch = Watch(fd: fd, driver: self)
            retained.append(watch)
            curl_multi_assign(multi, fd, Unmanaged.passUnretained(watch).toOpaque())
        }
        if what == CURL_POLL_REMOVE {
            watch.removed = true
            curl_multi_assign(multi, fd, nil)
            // curl closes the socket after this returns: drop the loop's registration first.
            loop.cancel(watch.operation)
            loop.forget(FileDescriptor(rawValue: fd))
            if !watch.operation.pointee.isPending && !watch.inCallback { release(watch) }
            return
        }
        var events: Int16 = 0
        if what & CURL_POLL_IN != 0 { events |= Int16(POLLIN) }
        if what & CURL_POLL_OUT != 0 { events |= Int16(POLLOUT) }
        let changed = events != watch.events
        watch.events = events
        if watch.operation.pointee.isPending {
            // A poll for the old events is in flight: cancel it; its callback polls for the new ones.
            if changed { loop.cancel(watch.operation) }
        } else if !watch.inCallback {
            arm(watch)
        }
    }

    private func release(_ watch: Watch) {
        retained.removeAll { $0 === watch }
    }

    private func arm(_ watch: Watch) {
        watch.operation.initialize(to: .poll(FileDescriptor(rawValue: watch.fd), events: watch.events))
        try? loop.submit(watch.operation, callback: CurlDriver.pollCallback, context: Unmanaged.passUnretained(watch).toOpaque())
    }

    private static let pollCallback: LoopCallback = { raw, context in
        let watch = Unmanaged<Watch>.fromOpaque(context!).takeUnretainedValue()
        let driver = watch.driver
        let result = LoopOperation.pointer(raw).pointee.result
        if !watch.removed && result > 0 {
            var flags: Int32 = 0
            if result & Int32(POLLIN | POLLHUP) != 0 { flags |= CURL_CSELECT_IN }
            if result & Int32(POLLOUT) != 0 { flags |= CURL_CSELECT_OUT }
            if result & Int32(POLLERR) != 0 { flags |= CURL_CSELECT_ERR }
            watch.inCallback = true
            driver.act(fd: watch.fd, flags: flags)
            watch.inCallback = false
        }
        if watch.removed {
            driver.release(watch)
        } else {
            driver.arm(watch)
        }
    }

    private func timerChanged(timeout: Int) {
        if timer.pointee.isPending {
            wantedTimeout = timeout >= 0 ? timeout : nil
            loop.cancel(timer)
        } else if timeout >= 0 {
            armTimer(timeout)
        }
    }

    private func armTimer(_ milliseconds: Int) {
        timer.initialize(to: .timer(after: .milliseconds(milliseconds)))
        try? loop.submit(timer, callback: CurlDriver.timerFired, context: Unmanaged.passUnretained(self).toOpaque())
    }

    private static let timerFired: LoopCallback = { raw, context in
        let driver = Unmanaged<CurlDriver>.fromOpaque(context!).takeUnretainedValue()
        let wanted = driver.wantedTimeout
        driver.wantedTimeout = nil
        if LoopOperation.pointer(raw).pointee.result == 0 {
            driver.act(fd: CURL_SOCKET_TIMEOUT, flags: 0)
        }
        if let wanted, !driver.timer.pointee.isPending { driver.armTimer(wanted) }
    }

    private func act(fd: Int32, flags: Int32) {
        curl_multi_socket_action(multi, fd, flags, &running)
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let transfer = Unmanaged<Transfer>.fromOpaque(weft_curl_easy_userdata(easy)!).takeUnretainedValue()
            transfer.result = message.pointee.data.result
            transfer.status = weft_curl_response_code(easy)
            transfer.done = true
        }
    }
}
