-- Argo CD health check for flink-sync's FlinkDeployment and FlinkSessionJob (flink.apache.org/v1beta1).
-- Use this same script for both keys of argocd-cm (see docs/argocd-health.md):
--   resource.customizations.health.flink.apache.org_FlinkDeployment
--   resource.customizations.health.flink.apache.org_FlinkSessionJob
-- Written for Lua 5.1 (Argo CD runs gopher-lua).
local hs = {}

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

-- status.error is a JSON string: {"type":"...","message":"...","additionalMetadata":{...},...}
local function error_message(err)
  if err == nil or err == "" then
    return nil
  end
  local message = string.match(err, '"message"%s*:%s*"(.-)"%s*,%s*"additionalMetadata"')
  return message or err
end

local function condition_message(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c.message
    end
  end
  return nil
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  return result("Progressing", "Deleting")
end

local status = obj.status
if status == nil or status.lifecycleState == nil then
  return result("Progressing", "Waiting for flink-sync to sync the resource")
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return result("Progressing", "Waiting for flink-sync to sync generation " .. tostring(generation))
end

local lifecycle = status.lifecycleState
local job_state = nil
if status.jobStatus ~= nil then
  job_state = status.jobStatus.state
end
local session_cluster = obj.kind == "FlinkDeployment" and (obj.spec == nil or obj.spec.job == nil)
local err = error_message(status.error)

if lifecycle == "FAILED" then
  return result("Degraded", err or "Job FAILED")
end
if lifecycle == "ROLLING_BACK" then
  -- flink-sync is already acting on the error: it redeploys the last stable spec.
  return result("Progressing", "Rolling back to the last stable spec" .. (err and (": " .. err) or ""))
end
if err ~= nil and lifecycle ~= "ROLLED_BACK" then
  return result("Degraded", err)
end
if lifecycle == "SUSPENDED" then
  return result("Suspended", "Suspended")
end
if lifecycle == "CREATED" and obj.spec ~= nil and obj.spec.job ~= nil and obj.spec.job.state == "suspended" then
  return result("Suspended", "Created suspended: nothing deployed")
end

if lifecycle == "STABLE" or lifecycle == "ROLLED_BACK" then
  local prefix = ""
  if lifecycle == "ROLLED_BACK" then
    prefix = "Rolled back to the last stable spec; "
  end
  if session_cluster then
    if status.jobManagerDeploymentStatus == "READY" then
      return result("Healthy", prefix .. "Session cluster READY")
    end
    return result("Progressing", prefix .. "JobManager " .. tostring(status.jobManagerDeploymentStatus))
  end
  if job_state == "RUNNING" or job_state == "FINISHED" then
    return result("Healthy", prefix .. "Job " .. job_state)
  end
  return result("Progressing", prefix .. "Job " .. tostring(job_state))
end

-- CREATED, DEPLOYED, UPGRADING, DELETING, DELETED
return result("Progressing", condition_message(status, "Ready") or ("lifecycle " .. tostring(lifecycle)))
