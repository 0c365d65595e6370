-- Library: a key template from store.KEYS with a placeholder such as "{code}", filled in
-- (for records whose id is made inside a script).
local function fill(template, placeholder, value)
    local at = string.find(template, placeholder, 1, true)
    return string.sub(template, 1, at - 1) .. value .. string.sub(template, at + #placeholder)
end
