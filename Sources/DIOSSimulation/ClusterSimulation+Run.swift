import DIOSCore
import DIOSWire

// Running a seed: the steps, the faults, and the checks after each.
extension ClusterSimulation {
    public func run() throws(Failure) {
        let c = configuration
        var rng = SplitMix64(seed: seed)
        let network = Network(seed: seed &* 31 &+ 7, c)
        // Member k is instance k % perNode of node k / perNode.
        let count = c.nodes * c.perNode
        let ids = (0..<count).map { InstanceID(node: UInt16($0 / c.perNode), core: UInt16($0 % c.perNode)) }
        let addresses = (0..<count).map {
            PeerAddress(ipv4: 0x0A00_0000 | UInt32($0 / c.perNode + 1), port: UInt16(7400 + $0 % c.perNode))
        }
        func node(_ n: Int) -> Range<Int> { (n * c.perNode)..<((n + 1) * c.perNode) }
        for a in addresses { network.group[a] = 0 }
        var epochSeed = seed
        var incarnations = [UInt32](repeating: 0, count: count)
        func makeMember(_ k: Int) -> Member {
            incarnations[k] += 1
            epochSeed = epochSeed &* 6364136223846793005 &+ 1442695040888963407
            var peers: [InstanceID: PeerAddress] = [:]
            for j in 0..<count where ids[j].node != ids[k].node { peers[ids[j]] = addresses[j] }
            let endpoint = WireEndpoint(
                local: ids[k], transport: Port(network, addresses[k]), peers: peers, configuration: Self.session,
                now: network.now, seed: epochSeed)
            return Member(
                endpoint: endpoint, names: NameService(local: ids[k], siblings: c.perNode),
                incarnation: incarnations[k],
                now: network.now)
        }
        var members = (0..<count).map { makeMember($0) }
        var deleted: Set<RemoteEndKey> = []

        /// As the kernel's `broadcast`: to the siblings, then to this instance's
        /// share of the other nodes' instances.
        func broadcast(_ k: Int, _ delta: NameDelta) {
            for j in node(Int(ids[k].node)) where j != k { members[j].inbox.append((ids[k], delta)) }
            relay(k, delta)
        }
        func relay(_ k: Int, _ delta: NameDelta) {
            let bytes = RemoteMessage.nameDelta(delta).encoded()
            for session in members[k].endpoint.sessions where session.isUp && members[k].names.relays(to: session.peer)
            {
                send(k, bytes, to: session.peer)
            }
        }
        func send(_ k: Int, _ bytes: [UInt8], to peer: InstanceID) {
            _ = bytes.withUnsafeBytes { body in
                try? members[k].endpoint.send(
                    to: peer, prefix: UnsafeRawBufferPointer(start: nil, count: 0), body: body, now: network.now)
            }
        }
        func pollAll() {
            for k in members.indices where members[k].alive {
                let m = members[k]
                let fromSiblings = m.inbox
                m.inbox.removeAll()
                for (sibling, delta) in fromSiblings where m.names.receive(delta, from: sibling) && !forgetRelay {
                    relay(k, delta)
                }
                _ = m.endpoint.poll(
                    now: network.now,
                    deliver: { peer, bytes in
                        guard let (message, _) = try? RemoteMessage.decode(bytes) else { return true }
                        switch message {
                        case .nameDelta(let d): m.names.receive(d, from: peer)
                        case .nameSync(let reset, let inserts):
                            if forgetPurge && reset {
                                for d in inserts { m.names.receive(d, from: peer) }
                            } else {
                                m.names.receiveSync(reset: reset, inserts: inserts, from: peer)
                            }
                        default: break
                        }
                        return true
                    },
                    changed: { peer, change in
                        switch change {
                        case .up:
                            let own = m.own.sorted { $0.key.index < $1.key.index }.map { (object, v) in
                                (
                                    v.0,
                                    InstanceRecord(
                                        owner: ids[k], object: object, kind: .blob, size: 8, persistent: false), v.1
                                )
                            }
                            for message in m.names.syncMessages(own: own, to: peer) {
                                _ = message.encoded().withUnsafeBytes { body in
                                    try? m.endpoint.send(
                                        to: peer, prefix: UnsafeRawBufferPointer(start: nil, count: 0), body: body,
                                        now: network.now)
                                }
                            }
                        case .down:
                            if !forgetPurge { m.names.peerDown(peer) }
                        }
                    })
            }
        }
        func checkReachability(_ step: Int) throws(Failure) {
            for k in members.indices where members[k].alive {
                // Whether the session with the instance relaying each node here is up.
                var up = [Bool](repeating: false, count: c.nodes)
                up[Int(ids[k].node)] = true
                for session in members[k].endpoint.sessions where session.isUp {
                    // Member index of the peer; whether it relays its node to k, by the rule the kernel uses.
                    let j = Int(session.peer.node) * c.perNode + Int(session.peer.core)
                    if members[j].names.relays(to: ids[k]) { up[Int(session.peer.node)] = true }
                }
                var stale: (Name, InstanceID)? = nil
                members[k].names.others.forEachLive { name, r in
                    if stale == nil && !up[Int(r.owner.node)] { stale = (name, r.owner) }
                }
                if let (name, owner) = stale {
                    throw Failure(
                        seed: seed, step: step,
                        message: "\(ids[k]) holds \(name) of \(owner), whose node's session is down")
                }
            }
        }

        func publish(_ k: Int, _ name: Name) -> ObjectID {
            let object = ObjectID(index: members[k].nextObject, generation: members[k].incarnation)
            members[k].nextObject += 1
            let record = InstanceRecord(owner: ids[k], object: object, kind: .blob, size: 8, persistent: false)
            let (tag, delta) = members[k].names.publish(name, record)
            members[k].own[object] = (name, tag)
            broadcast(k, delta)
            return object
        }
        func unpublish(_ k: Int, _ object: ObjectID) {
            guard let (name, tag) = members[k].own.removeValue(forKey: object) else { return }
            deleted.insert(RemoteEndKey(owner: ids[k], object: object))
            broadcast(k, members[k].names.unpublish(name, tag: tag))
        }
        /// Each instance's bootstrapper and scheduler, when their check is due.
        func runElections() {
            for k in members.indices where ids[k].core == 0 && members[k].alive && members[k].nextCheck <= network.now {
                let m = members[k]
                m.nextCheck = network.now + 100_000_000
                let owners = m.schedulerOwners(ids[k])
                if let object = m.scheduler {
                    if !neverStepDown && SchedulerElection.shouldStepDown(me: ids[k], owners: owners) {
                        m.scheduler = nil
                        unpublish(k, object)
                    }
                } else {
                    let reachable =
                        ids.filter { $0.node == ids[k].node } + m.endpoint.sessions.filter(\.isUp).map(\.peer)
                    if SchedulerElection.shouldStart(me: ids[k], owners: owners, reachable: reachable, running: false) {
                        m.scheduler = publish(k, SchedulerElection.name)
                    }
                }
            }
        }

        for step in 0..<c.steps {
            let k = Int(rng.next() % UInt64(count))
            let n = Int(ids[k].node)
            let roll = rng.unit()
            if members[k].alive && roll < 0.35 {
                _ = publish(k, Name(words: (rng.next(), rng.next(), rng.next(), rng.next())))
            } else if members[k].alive && roll < 0.5,
                // The oldest: a dictionary's order changes with the process's
                // hash seed, and a seed must replay alike in any process.
                let object = members[k].own.keys.filter({ $0 != members[k].scheduler }).min(by: { $0.index < $1.index })
            {
                unpublish(k, object)
            } else if members[k].alive && roll < 0.5 + c.crash {
                // The whole node: its instances are one process.
                for j in node(n) {
                    members[j].alive = false
                    members[j].inbox.removeAll()
                    network.dead.insert(addresses[j])
                    for (object, _) in members[j].own { deleted.insert(RemoteEndKey(owner: ids[j], object: object)) }
                }
            } else if !members[k].alive && roll < 0.5 + c.restart {
                for j in node(n) {
                    network.dead.remove(addresses[j])
                    members[j] = makeMember(j)  // a new incarnation: new epochs, nothing of its own
                }
            } else if roll > 1 - c.partition {
                for n in 0..<c.nodes {
                    let side = Int(rng.next() % 2)
                    for j in node(n) { network.group[addresses[j]] = side }
                }
            } else if roll > 1 - c.partition - c.heal * 0.1 {
                for a in addresses { network.group[a] = 0 }
            }
            // Time passes in small steps; every instance polls in each.
            let advance = 1 + rng.next() % 5
            for _ in 0..<advance {
                network.now += 1_000_000
                pollAll()
                runElections()
                try checkReachability(step)
            }
        }

        // Quiescence: heal, restart the crashed, let sessions settle.
        for a in addresses { network.group[a] = 0 }
        for k in members.indices where !members[k].alive {
            network.dead.remove(addresses[k])
            members[k] = makeMember(k)
        }
        // 1 s: several failure timeouts' worth of heartbeats, and enough
        // election checks (100 ms apart) for a scheduler to start or step down.
        for _ in 0..<1000 {
            network.now += 1_000_000
            pollAll()
            runElections()
            try checkReachability(c.steps)
        }
        let schedulers = members.indices.filter { members[$0].scheduler != nil }.map { ids[$0] }
        guard schedulers.count == 1 else {
            throw Failure(
                seed: seed, step: c.steps, message: "\(schedulers.count) schedulers after healing: \(schedulers)")
        }
        for k in members.indices where members[k].schedulerOwners(ids[k]) != schedulers {
            throw Failure(
                seed: seed, step: c.steps,
                message:
                    "\(ids[k])'s lookup finds schedulers on \(members[k].schedulerOwners(ids[k])), not \(schedulers[0])"
            )
        }
        for k in members.indices {
            for j in members.indices where j != k {
                guard members[k].reachable(ids[j]) else {
                    throw Failure(seed: seed, step: c.steps, message: "\(ids[k]) never reached \(ids[j]) after healing")
                }
                let seen = Set(
                    members[k].names.others.all.flatMap { name, records in
                        records.filter { $0.owner == ids[j] }.map { RemoteEndKey(owner: $0.owner, object: $0.object) }
                    })
                let actual = Set(members[j].own.keys.map { RemoteEndKey(owner: ids[j], object: $0) })
                if seen != actual {
                    throw Failure(
                        seed: seed, step: c.steps,
                        message: "\(ids[k]) sees \(seen.count) of \(ids[j])'s objects, it holds \(actual.count)")
                }
                if let back = seen.first(where: { deleted.contains($0) }) {
                    throw Failure(
                        seed: seed, step: c.steps, message: "\(ids[k]) sees deleted \(back.object) of \(back.owner)")
                }
            }
        }
    }
}
