-- Argo CD health check for flink-sync's FlinkStateSnapshot (flink.apache.org/v1beta1), under the argocd-cm key
--   resource.customizations.health.flink.apache.org_FlinkStateSnapshot
-- (see docs/argocd-health.md). Written for Lua 5.1 (Argo CD runs gopher-lua).
local hs = {}

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

-- status.error is a JSON string ({"type":"...","message":"...","additionalMetadata":{...},...}) or, for an
-- abandoned snapshot, a plain sentence.
local function error_message(err)
  if err == nil or err == "" then
    return nil
  end
  local message = string.match(err, '"message"%s*:%s*"(.-)"%s*,%s*"additionalMetadata"')
  return message or err
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  return result("Progressing", "Deleting (a savepoint with disposeOnDelete is disposed of first)")
end

local status = obj.status
if status == nil or status.state == nil then
  return result("Progressing", "Waiting for flink-sync to sync the snapshot")
end

local state = status.state
local err = error_message(status.error)
local failures = status.failures or 0

if state == "COMPLETED" then
  if status.path ~= nil and status.path ~= "" then
    return result("Healthy", "COMPLETED: " .. status.path)
  end
  return result("Healthy", "COMPLETED")
end
if state == "FAILED" then
  return result("Degraded", err or "FAILED")
end
if state == "ABANDONED" then
  return result("Degraded", err or "ABANDONED: the job was not running")
end
if err ~= nil and failures > 0 then
  -- a failed attempt: flink-sync triggers it again after the backoff
  return result("Progressing", "Retrying after " .. tostring(failures) .. " failure(s): " .. err)
end
if err ~= nil then
  -- the spec is invalid, or the job it references does not exist: nothing is triggered until that changes
  return result("Degraded", err)
end
return result("Progressing", state)
