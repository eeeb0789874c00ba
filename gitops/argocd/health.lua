-- Argo CD health check for Coalmine's Canary and BlueGreen (coalmine.dev). The same script serves both kinds
-- because it reads only status fields they share: observedGeneration, phase, conditions, pausedByUser, hold,
-- canaryWeight, failedChecks and message.
--
-- Healthy      Succeeded or Initialized: the promoted revision is serving all traffic.
-- Progressing  the controller has not seen the latest spec yet, a rollout is under way, or the object is being
--              deleted (the target is being restored).
-- Suspended    waiting for a person: confirm-promotion (WaitingPromotion), a user pause, a pause step with no
--              duration.
-- Degraded     the rollout failed (the primary still serves the previous revision), or the spec is invalid.
-- Missing is Argo CD's own state for an object that does not exist; Unknown is returned for a phase this script
-- does not know (a newer operator), so it is never reported Healthy by mistake.

local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function message_of(status, fallback)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  local ready = condition(status, "Ready")
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    return ready.message
  end
  return fallback
end

local function detail(prefix, text)
  if text == nil or text == "" then
    return prefix
  end
  return prefix .. ": " .. text
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Coalmine to report status"
  return hs
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for Coalmine to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "False" and ready.reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = "Invalid spec: " .. (ready.message or "")
  return hs
end

local phase = status.phase or ""
local at = "at canary weight " .. tostring(status.canaryWeight or 0) .. "%"

if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message_of(status, "Rollout failed after " .. tostring(status.failedChecks or 0) .. " failed checks")
elseif phase == "Succeeded" or phase == "Initialized" then
  hs.status = "Healthy"
  hs.message = message_of(status, "Promotion finished")
elseif phase == "WaitingPromotion" then
  hs.status = "Suspended"
  hs.message = detail("Waiting for approval to promote " .. at, message_of(status, ""))
elseif status.pausedByUser == true or status.hold == "UserPause" or status.hold == "ManualPause" then
  hs.status = "Suspended"
  hs.message = detail("Paused " .. at, message_of(status, ""))
elseif phase == "Terminating" or phase == "Terminated" then
  hs.status = "Progressing"
  hs.message = detail("Being deleted", message_of(status, "restoring the target"))
elseif phase == "Initializing" or phase == "Waiting" or phase == "Progressing" or phase == "Promoting"
    or phase == "Finalising" or phase == "" then
  hs.status = "Progressing"
  hs.message = detail((phase ~= "" and phase or "Starting") .. " " .. at, message_of(status, ""))
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. phase .. " (is this script older than the operator?)"
end
return hs
