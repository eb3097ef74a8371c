-- rate-sweep.lua: UDP rate sweep with latency against dpstack's udp-echo,
-- for pktgen-dpdk 23.03.0 built with -Denable_lua=true.
--
--   pktgen <EAL options> -- -P -m 1.0 -f perf/pktgen/rate-sweep.lua
--
-- Settings come from the environment (defaults in brackets):
--   DUT_MAC    MAC of dpstack's port (dpstack prints it at start)   [required]
--   DUT_IP     dpstack's address                                    [198.19.77.1]
--   SRC_IP     pktgen's address, with prefix; pktgen answers dpstack's ARP
--              for it because "process" is enabled below             [198.19.77.2/24]
--   DPORT      UDP port of dpstack's udp-echo                       [7]
--   SIZE       frame size without CRC, 64..1518                     [64]
--   RATES      percents of the link speed, comma separated          [1,2,5,10,20]
--   SECS       seconds per step                                     [3]
--   LATENCY    1: latency probes on, 0: off (the stream alone)      [1]
--   MARK       write "start RATE" to this file when a step starts
--              sending and "stop RATE" when it stops (for a script
--              that measures the target over the same window)     [none]
--   SWEEP_OUT  also append the result lines to this file            [none]
--
-- Per step it prints one line starting with "sweep:": the rate asked for,
-- packets sent and received by the port (the received count includes
-- dpstack's ARP requests, the sent count pktgen's latency probes), the
-- resulting pps, and pktgen's latency probes: how many came back, how many
-- were out of order (skipped), min/avg/max in microseconds. pktgen sends one
-- latency probe every 10 ms (a 124-byte UDP frame with a timestamp after the
-- UDP header, same addresses and ports as the stream); udp-echo reflects its
-- payload unchanged, so the timestamp comes back and pktgen measures the
-- round trip.

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then return default end
    return v
end

local port    = "0"
local pid     = tonumber(port)
local dut_mac = env("DUT_MAC", nil)
local dut_ip  = env("DUT_IP", "198.19.77.1")
local src_ip  = env("SRC_IP", "198.19.77.2/24")
local dport   = tonumber(env("DPORT", "7"))
local size    = tonumber(env("SIZE", "64"))
local secs    = tonumber(env("SECS", "3"))
local out     = env("SWEEP_OUT", nil)
local latency = env("LATENCY", "1") ~= "0"
local mark    = env("MARK", nil)
local rates   = {}
for r in string.gmatch(env("RATES", "1,2,5,10,20"), "[^,]+") do
    rates[#rates + 1] = r
end

local outf = nil
if out ~= nil then outf = io.open(out, "a") end

local function mark_step(what, rate)
    if mark == nil then return end
    local f = io.open(mark, "w")
    if f ~= nil then f:write(what .. " " .. rate .. "\n"); f:close() end
end

local function emit(line)
    print(line)
    if outf ~= nil then outf:write(line .. "\n"); outf:flush() end
end

if dut_mac == nil then
    emit("sweep: error: set DUT_MAC to the MAC of dpstack's port")
    pktgen.quit()
    return
end

-- The stream: single-packet mode, UDP, sent until stopped.
pktgen.set_mac(port, "dst", dut_mac)
pktgen.set_ipaddr(port, "src", src_ip)
pktgen.set_ipaddr(port, "dst", dut_ip)
pktgen.set_proto(port, "udp")
pktgen.set(port, "sport", 1234)
pktgen.set(port, "dport", dport)
pktgen.set(port, "size", size)
pktgen.set(port, "count", 0)
-- Answer ARP for src_ip: dpstack resolves the sender before it replies.
pktgen.process(port, "enable")
-- Latency probes (ENABLE_LATENCY_PKTS); they are added to the stream.
if latency then
    pktgen.latency(port, "enable")
    -- pktgen computes the average latency only while its latency page is shown.
    pktgen.page("latency")
end

-- One short warm-up, so that dpstack has resolved our MAC before step 1.
pktgen.set(port, "rate", "1")
pktgen.start(port)
pktgen.delay(500)
pktgen.stop(port)
pktgen.delay(1000)

emit(string.format("sweep: %-6s %10s %10s %9s %9s %7s %7s %9s %9s %9s",
    "rate%", "tx_pkts", "rx_pkts", "tx_pps", "rx_pps", "lat_n", "lat_skp",
    "lat_min", "lat_avg", "lat_max"))

for _, rate in ipairs(rates) do
    pktgen.clr()
    pktgen.set(port, "rate", rate)
    pktgen.delay(200)
    mark_step("start", rate)
    pktgen.start(port)
    pktgen.delay(secs * 1000)
    pktgen.stop(port)
    mark_step("stop", rate)
    -- let the last replies arrive and the display thread refresh avg_cycles
    pktgen.delay(1500)

    local ps  = pktgen.portStats(port, "port")[pid]
    local lat = pktgen.pktStats(port)[pid].latency
    emit(string.format("sweep: %-6s %10d %10d %9d %9d %7d %7d %9.1f %9.1f %9.1f",
        rate, ps.opackets, ps.ipackets,
        math.floor(ps.opackets / secs), math.floor(ps.ipackets / secs),
        lat.num_pkts, lat.num_skipped, lat.min_us, lat.avg_us, lat.max_us))
end

if outf ~= nil then outf:close() end
pktgen.quit()
