-- POSTs leads, each with a lead_id no other request has used, so every lead is a new insert (the product
-- deduplicates on (origin, lead_id): a repeat would be a cheap no-op and inflate the figure).
--
--   wrk -t2 -c8 -d10s -s bench/wrk/leads.lua URL -- BODIES_FILE LEADS_PER_REQUEST TOKEN RUN_TAG
--
-- BODIES_FILE: one lead per line, its JSON object without the opening "{" and without lead_id (written by
-- bench/http_intake.py from routing.demo.leads.synthetic_lead). LEADS_PER_REQUEST: 1 posts one JSON object,
-- more posts a JSON list. TOKEN: the capture source's token ("-" for none). RUN_TAG: unique per wrk run.
-- done() prints one "BENCH-RESULT key=value ..." line for the Python side to parse.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

function init(args)
   local bodies_file, per_request, token, run_tag = args[1], tonumber(args[2]), args[3], args[4]
   leads_per_request, tag = per_request, run_tag
   templates = {}
   for line in io.lines(bodies_file) do
      table.insert(templates, line)
   end
   -- Threads start at different places in the bodies, so they do not post the same lead shapes in step.
   cursor = (thread_no * 7919) % #templates
   counter = 0
   sent_leads, accepted, duplicates, invalid, unexpected = 0, 0, 0, 0, 0
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   if token ~= "-" then
      wrk.headers["Authorization"] = "Token " .. token
   end
end

local function next_lead()
   counter = counter + 1
   cursor = cursor % #templates + 1
   return string.format('{"lead_id": "%s-%d-%d", ', tag, thread_no, counter) .. templates[cursor]
end

function request()
   local body
   if leads_per_request == 1 then
      body = next_lead()
   else
      local leads = {}
      for i = 1, leads_per_request do
         leads[i] = next_lead()
      end
      body = "[" .. table.concat(leads, ", ") .. "]"
   end
   sent_leads = sent_leads + leads_per_request
   return wrk.format(nil, nil, nil, body)
end

local function count(body, pattern)
   local _, n = string.gsub(body, pattern, "")
   return n
end

function response(status, headers, body)
   if leads_per_request == 1 then
      -- 201 from the baseline view, 202 from intake for a new lead, 200 from intake for a repeat.
      if status == 201 or status == 202 then
         accepted = accepted + 1
      elseif status == 200 then
         duplicates = duplicates + 1
      else
         unexpected = unexpected + 1
      end
   elseif status == 200 then
      accepted = accepted + count(body, '"status":%s*"accepted"')
      duplicates = duplicates + count(body, '"status":%s*"duplicate"')
      invalid = invalid + count(body, '"status":%s*"invalid"')
   else
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local totals = { sent_leads = 0, accepted = 0, duplicates = 0, invalid = 0, unexpected = 0 }
   for _, thread in ipairs(threads) do
      for key, value in pairs(totals) do
         totals[key] = value + thread:get(key)
      end
   end
   local errors = summary.errors
   io.write(string.format(
      "BENCH-RESULT requests=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d max_us=%d "
         .. "sent_leads=%d accepted=%d duplicates=%d invalid=%d unexpected=%d "
         .. "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
      totals.sent_leads, totals.accepted, totals.duplicates, totals.invalid, totals.unexpected,
      errors.status, errors.connect, errors.read, errors.write, errors.timeout
   ))
end
